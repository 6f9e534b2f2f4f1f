"""supervisor.cgroup_limits and what sizes by it: cgroup v1 and v2 files laid out in a
temporary folder, as a container with a CPU quota and a memory limit shows them."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from contracts.pull_share_layout import allowed
from supervisor.cgroup_limits import (
    Cgroup,
    parse_cfs,
    parse_cpu_max,
    parse_memory_limit,
    parse_own_paths,
    parse_usage_usec,
    quota_cpus,
)
from supervisor.cpu_busy import CpuBusy, QuotaBusy, affinity_cpus, cpu_reading, usable_cpus
from supervisor.pull_steering import PullSteering
from supervisor.settings import SupervisorSettings

GIB = 1024**3


def lay_out(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def cgroup(root: Path, proc_self: str = "0::/\n") -> Cgroup:
    own = root / "proc-self-cgroup"
    own.write_text(proc_self)
    return Cgroup(root, proc_self=str(own))


def v2(tmp_path: Path, cpu_max: str = "200000 100000", memory: str = "536870912",
       usage_usec: int = 0) -> Cgroup:  # fmt: skip
    return cgroup(lay_out(tmp_path, {
        "cpu.max": f"{cpu_max}\n",
        "cpu.stat": f"usage_usec {usage_usec}\nuser_usec 1\nsystem_usec 2\n",
        "memory.max": f"{memory}\n",
    }))  # fmt: skip


def v1(tmp_path: Path, quota: str = "150000", period: str = "100000") -> Cgroup:
    return cgroup(lay_out(tmp_path, {
        "cpu,cpuacct/cpu.cfs_quota_us": f"{quota}\n",
        "cpu,cpuacct/cpu.cfs_period_us": f"{period}\n",
        "cpu,cpuacct/cpuacct.usage": "2500000000\n",
        "memory/memory.limit_in_bytes": "1073741824\n",
    }), proc_self="4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n")  # fmt: skip


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("200000 100000\n", 2.0), ("50000 100000", 0.5), ("max 100000", None), ("", None),
     ("x 1", None), ("100 0", None)],
)  # fmt: skip
def test_cpu_max_reads_quota_over_period(text, cpus):
    assert parse_cpu_max(text) == cpus


def test_cfs_quota_minus_one_is_no_quota():
    assert parse_cfs("-1\n", "100000\n") is None
    assert parse_cfs("300000\n", "100000\n") == 3.0


@pytest.mark.parametrize(
    ("text", "limit"),
    [("536870912\n", 512 * 1024**2), ("max\n", None), ("9223372036854771712\n", None),
     ("0", None), ("junk", None)],
)  # fmt: skip
def test_memory_limit_max_and_v1s_huge_number_mean_none(text, limit):
    assert parse_memory_limit(text) == limit


def test_usage_and_own_paths_parse():
    assert parse_usage_usec("nr_periods 3\nusage_usec 1234\n") == 1234
    assert parse_usage_usec("user_usec 1\n") is None
    assert parse_own_paths("0::/kubepods/pod1/c1\n") == {"": "kubepods/pod1/c1"}
    assert parse_own_paths("3:cpu,cpuacct:/d\n") == {"cpu": "d", "cpuacct": "d"}


def test_v2_files_give_quota_memory_and_usage(tmp_path):
    group = v2(tmp_path, usage_usec=3_000_000)
    assert (group.cpu_quota(), group.memory_limit(), group.cpu_usage_s()) == (
        2.0,
        512 * 1024**2,
        3.0,
    )


def test_v1_files_give_quota_memory_and_usage(tmp_path):
    group = v1(tmp_path)
    assert (group.cpu_quota(), group.memory_limit(), group.cpu_usage_s()) == (1.5, GIB, 2.5)


def test_v2_own_path_outside_a_namespace_is_preferred(tmp_path):
    lay_out(tmp_path, {"cpu.max": "max 100000\n", "system.slice/x/cpu.max": "100000 100000\n"})
    assert cgroup(tmp_path, "0::/system.slice/x\n").cpu_quota() == 1.0
    assert cgroup(tmp_path, "0::/elsewhere\n").cpu_quota() is None  # the root's own: max


def test_no_cgroup_files_mean_no_limits(tmp_path):
    group = cgroup(tmp_path)
    assert (group.cpu_quota(), group.memory_limit(), group.cpu_usage_s()) == (None, None, None)
    assert usable_cpus(group) == affinity_cpus()
    assert isinstance(cpu_reading(group), CpuBusy)


def test_quota_rounds_up_and_never_exceeds_affinity():
    assert quota_cpus(1.5, 64) == 2
    assert quota_cpus(0.2, 64) == 1
    assert quota_cpus(8.0, 4) == 4
    assert quota_cpus(None, 64) == 64


def test_quota_busy_is_the_share_of_the_quota_used(tmp_path):
    group = v2(tmp_path, usage_usec=0)
    ticks = iter([10.0, 11.0, 12.0, 12.0])
    busy = QuotaBusy(group, quota=2.0, clock=lambda: next(ticks))
    (tmp_path / "cpu.stat").write_text("usage_usec 1000000\n")  # 1 CPU-second in 1 s of 2
    assert busy.fraction() == pytest.approx(0.5)
    (tmp_path / "cpu.stat").write_text("usage_usec 3000000\n")  # throttled: all of the quota
    assert busy.fraction() == pytest.approx(1.0)
    assert busy.fraction() is None  # no time passed


def test_steering_under_a_one_cpu_quota_starts_one_puller(tmp_path):
    """A tree of four decoders in a container allowed one CPU starts one puller, not one
    per host CPU, and steers by its cgroup's usage, not the host's /proc/stat."""
    v2(tmp_path, cpu_max="100000 100000")
    settings = SupervisorSettings(workers=4, cgroup_root=str(tmp_path))
    steering = PullSteering.in_shared_memory(multiprocessing.get_context("spawn"), settings)
    assert steering.allowed == allowed(steering.shared) == 1
    assert isinstance(steering.cpu, QuotaBusy)


def test_v2_a_max_in_our_own_cgroup_does_not_hide_a_parents_limits(tmp_path):
    lay_out(tmp_path, {
        "kubepods/pod1/cpu.max": "150000 100000\n",
        "kubepods/pod1/memory.max": "1073741824\n",
        "kubepods/pod1/app/cpu.max": "max 100000\n",
        "kubepods/pod1/app/memory.max": "max\n",
        "kubepods/cpu.max": "400000 100000\n",
        "kubepods/memory.max": "4294967296\n",
    })  # fmt: skip
    group = cgroup(tmp_path, "0::/kubepods/pod1/app\n")
    assert (group.cpu_quota(), group.memory_limit()) == (1.5, GIB)


def test_v2_our_own_tighter_limit_wins_over_a_parents(tmp_path):
    lay_out(tmp_path, {
        "a/cpu.max": "400000 100000\n", "a/b/cpu.max": "50000 100000\n",
        "a/memory.max": "1073741824\n", "a/b/memory.max": "536870912\n",
    })  # fmt: skip
    group = cgroup(tmp_path, "0::/a/b\n")
    assert (group.cpu_quota(), group.memory_limit()) == (0.5, GIB // 2)


def test_v1_a_parents_quota_and_limit_count_too(tmp_path):
    lay_out(tmp_path, {
        "cpu,cpuacct/docker/cpu.cfs_quota_us": "100000\n",
        "cpu,cpuacct/docker/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "-1\n",
        "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        "memory/docker/memory.limit_in_bytes": "1073741824\n",
        "memory/docker/abc/memory.limit_in_bytes": "9223372036854771712\n",
    })  # fmt: skip
    group = cgroup(tmp_path, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n")
    assert (group.cpu_quota(), group.memory_limit()) == (1.0, GIB)
