"""bench/memory_cap.py: which cgroup files it writes on either hierarchy (laid out in a
temporary folder), what it refuses, and, where this machine lets it, that a real cap holds:
a process inside cannot keep more memory than the cap."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import memory_cap  # noqa: E402


def test_sizes_are_read_in_binary_units() -> None:
    assert memory_cap.parse_bytes("512M") == 512 << 20
    assert memory_cap.parse_bytes("1GiB") == 1 << 30
    assert memory_cap.parse_bytes("1.5g") == 3 << 29
    assert memory_cap.parse_bytes("4096") == 4096
    assert memory_cap.parse_bytes("0") == 0


def test_unified_hierarchy_gets_memory_max(tmp_path, monkeypatch) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    monkeypatch.setattr(memory_cap, "CGROUP_ROOT", tmp_path)
    cap = memory_cap.MemoryCap(256 << 20, name="probe")
    assert (tmp_path / "probe" / "memory.max").read_text() == str(256 << 20)
    cap.confine(4242)
    assert (tmp_path / "probe" / "cgroup.procs").read_text() == "4242"


def test_v1_hierarchy_gets_limit_in_bytes(tmp_path, monkeypatch) -> None:
    (tmp_path / "memory").mkdir()
    monkeypatch.setattr(memory_cap, "CGROUP_ROOT", tmp_path)
    memory_cap.MemoryCap(1 << 30, name="probe")
    assert (tmp_path / "memory" / "probe" / "memory.limit_in_bytes").read_text() == str(1 << 30)


def test_no_memory_controller_is_said_not_ignored(tmp_path, monkeypatch) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu pids\n")
    monkeypatch.setattr(memory_cap, "CGROUP_ROOT", tmp_path)
    with pytest.raises(memory_cap.MemoryCapUnavailable, match="no memory cgroup controller"):
        memory_cap.MemoryCap(1 << 30)


def test_children_of_finds_a_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in memory_cap.children_of(os.getpid())
    finally:
        child.kill()
        child.wait()


def test_a_real_cap_holds_where_the_machine_allows_one() -> None:
    try:
        cap = memory_cap.MemoryCap(64 << 20, name=f"miniscan-test-{os.getpid()}")
    except memory_cap.MemoryCapUnavailable as exc:
        pytest.skip(f"this machine cannot cap memory here: {exc}")
    try:
        # Waits for its stdin, so that it is inside the cap before it allocates 256 MiB.
        hog = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.read(1); b = bytearray(256 << 20);"
             " b[::4096] = b'x' * len(b[::4096]); print('kept', len(b))"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        cap.confine(hog.pid)
        out, _ = hog.communicate("go", timeout=60)
        assert hog.returncode != 0 and "kept" not in out, "256 MiB were kept under a 64 MiB cap"
    finally:
        cap.remove()
    assert not cap.folder.exists()
