"""Smoke tests: the end-to-end benchmark runs every mode on tiny workloads, so it cannot rot.

The run reuses the session's emulator (`--emulator-host`) and skips the wait for the ack
deadline; the leftover count it would then take is tested on its own, directly. A few pure
checks pin the parts whose mistakes would silently skew the figures: the percentile
arithmetic and where a run lands in RESULTS.md. The backlog and its expected table are
`scanner.workload`'s, tested in tests/test_scanner_workload.py.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH_DIR))

from e2e_candidates import RunFigures  # noqa: E402
from e2e_latency import histogram_quantile, percentile  # noqa: E402
from e2e_procs import ProcessFigures, TreeSampler, read_cpu_s, read_jit_cpu_s  # noqa: E402
from e2e_pubsub import count_deliverable, create_target, delete_target, publish_backlog  # noqa: E402
from e2e_report import SECTION, emulator_seconds, record_run  # noqa: E402
from e2e_verdicts import worst_growth  # noqa: E402


def table_rows(text: str, first_header: str) -> list[list[str]]:
    """The body rows of the Markdown table whose header starts with `first_header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


@pytest.mark.emulator
def test_every_mode_runs_on_a_tiny_workload_and_prints_its_tables(
    pubsub_emulator: str, tmp_path: Path
) -> None:
    results = tmp_path / "RESULTS.md"
    result = subprocess.run(
        [sys.executable, str(BENCH_DIR / "e2e.py"), "--mode", "all", "--n", "500",
         "--naive-n", "100", "--workers", "1", "--repeat", "1", "--rates", "200",
         "--duration", "2", "--memory-n", "300,600", "--skip-redelivery-check",
         "--emulator-host", pubsub_emulator, "--workdir", str(tmp_path / "work"),
         "--record", str(results)],
        capture_output=True, text=True, timeout=120, cwd=BENCH_DIR.parent,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    throughput = {row[0]: row for row in table_rows(result.stdout, "candidate")}
    assert set(throughput) == {"raw", "raw-held", "naive", "naive-sqlite3", "miniscan w1"}
    for name, row in throughput.items():
        assert float(row[2].replace(",", "")) > 0, row  # msgs/s
        assert row[10] == ("n/a" if name.startswith("raw") else "0"), row  # rows wrong
        # PSS: sampled in the untimed run (naive: its only run), carried to the median
        assert int(row[12]) > 0, row
    assert throughput["naive"][1] == "100" and throughput["miniscan w1"][1] == "500"
    (latency,) = table_rows(result.stdout, "rate asked")
    assert latency[2] == latency[3] == "400", latency  # every message seen committed
    memory = table_rows(result.stdout, "backlog")
    assert [row[0] for row in memory] == ["300", "600"]
    assert "- met: no wrong rows" in result.stdout
    # the figures come last (the verdicts close them), and the same block was recorded
    assert re.match(r"- (met|MISSED): ", result.stdout.rstrip().splitlines()[-1])
    recorded = results.read_text()
    assert SECTION in recorded and re.search(r"- machine: \d+ CPUs", recorded)
    assert "- commit: " in recorded and "| miniscan w1 | 500 |" in recorded


@pytest.mark.emulator
def test_leftovers_are_counted_without_being_acknowledged(pubsub_emulator: str) -> None:
    target = create_target("smoke")
    try:
        publish_backlog(target, [b"a", b"b", b"c"])
        assert count_deliverable(target) == 3
        # now leased by that count, not acked: nothing is deliverable until the deadline
        assert count_deliverable(target) == 0
    finally:
        delete_target(target)


def test_bad_options_are_refused_in_one_line() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH_DIR / "e2e.py"), "--workers", "0"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "--workers" in result.stderr


def test_percentiles_follow_nearest_rank_and_prometheus_interpolation() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.99) == 99.0
    assert math.isnan(percentile([], 0.5))
    buckets = [(0.1, 50.0), (0.25, 90.0), (0.5, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.175)  # halfway in (0.1, 0.25]
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.375)


def test_a_run_is_recorded_at_the_end_of_its_own_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(f"# Benchmark results\n\n{SECTION}\n\nold run\n\n## Decode\n\nkept\n")
    record_run(results, "### new run\n")
    text = results.read_text()
    assert text.index("old run") < text.index("### new run") < text.index("## Decode")
    assert text.endswith("## Decode\n\nkept\n")


def test_memory_growth_compares_only_processes_that_live_through_the_drain() -> None:
    def run(messages: int, peaks: dict[str, int]) -> RunFigures:
        processes = [ProcessFigures(pid=i, name=n, peak_rss_kib=k)
                     for i, (n, k) in enumerate(peaks.items())]  # fmt: skip
        return RunFigures("miniscan w2", messages, 0.1, 1.0, processes, 0, 0.0, 0.0, 0, 0)

    small = run(20_000, {"writer": 32_000, "decoder-0": 56_000, "spawned check": 62_000})
    big = run(200_000, {"writer": 32_500, "decoder-0": 57_000, "spawned check": 69_000})
    assert worst_growth(small, big) == pytest.approx(57_000 / 56_000)
    grown = run(200_000, {"writer": 40_000, "decoder-0": 57_000, "spawned check": 62_000})
    assert worst_growth(small, grown) == pytest.approx(40_000 / 32_000)


def java_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip() == "java":
                    pids.append(int(entry))
        except (OSError, ValueError):
            continue
    return pids


@pytest.mark.emulator
def test_the_emulators_jit_is_told_apart_from_the_rest_of_its_cpu(pubsub_emulator: str) -> None:
    assert read_jit_cpu_s(os.getpid()) == 0.0  # no JIT compiler threads in Python
    jvms = java_pids()
    if not jvms:
        pytest.skip("the Pub/Sub server here is not a JVM (miniscan's built-in one)")
    # A JVM that started and served compiles: its compiler threads have used CPU, and that
    # is part of, never more than, the process's own CPU.
    assert any(0.0 < read_jit_cpu_s(pid) <= (read_cpu_s(pid) or 0.0) for pid in jvms)


def test_the_throughput_table_shows_the_emulators_jit_when_it_was_measured() -> None:
    run = RunFigures("raw", 1000, 0.1, 1.0, [], 0, 0.5, 1.25, None, 0)
    assert emulator_seconds(run) == "1.2"  # unknown (an emulator someone else started)
    run.emulator_jit_s = 0.31
    assert emulator_seconds(run) == "1.2 (JIT 0.31)"


def test_a_sampler_told_not_to_read_pss_reads_only_the_cheap_files() -> None:
    with_pss, without = TreeSampler(os.getpid()), TreeSampler(os.getpid(), pss=False)
    with_pss.sample()
    without.sample()
    assert with_pss.peak_tree_pss_kib > 0
    assert without.peak_tree_pss_kib == 0 and without.peak_tree_rss_kib > 0
