"""Archiving a dead child's metrics never stops the tree and never counts a value twice
(issue 25): a corrupt sample file is logged and dropped, and a write that fails halfway
leaves the archive as it was and the dead file in place."""

from __future__ import annotations

import struct

import pytest
from prometheus_client.mmap_dict import MmapedDict

from supervisor import metrics_archive
from supervisor.metrics_archive import archive_dead_process

DEAD_PID = 4242


def write_samples(path, samples: dict[str, float]) -> None:
    store = MmapedDict(str(path))
    for key, value in samples.items():
        store.write_value(key, value, 0.0)
    store.close()


def read_samples(path) -> dict[str, float]:
    entries = MmapedDict.read_all_values_from_file(str(path))
    return {key: value for key, value, _, _ in entries}


def corrupt(path) -> None:
    """Claim fewer used bytes than the first entry needs: prometheus_client then raises
    RuntimeError("Read beyond file size detected") while iterating, not when opening."""
    with open(path, "r+b") as file:
        file.write(struct.pack("i", 12))


def test_a_corrupt_file_is_dropped_and_the_others_are_archived(tmp_path, caplog):
    write_samples(tmp_path / f"counter_{DEAD_PID}.db", {"a_long_sample_key": 1.0})
    corrupt(tmp_path / f"counter_{DEAD_PID}.db")
    write_samples(tmp_path / f"histogram_{DEAD_PID}.db", {"h": 3.0})
    archive_dead_process(DEAD_PID, str(tmp_path))  # must not raise
    assert read_samples(tmp_path / "histogram_0.db") == {"h": 3.0}
    assert not (tmp_path / f"counter_{DEAD_PID}.db").exists()
    assert "unreadable" in caplog.text


def test_a_write_failing_halfway_leaves_the_archive_and_the_dead_file(tmp_path, monkeypatch):
    write_samples(tmp_path / "counter_0.db", {"a": 10.0})
    write_samples(tmp_path / f"counter_{DEAD_PID}.db", {"a": 1.0, "b": 2.0})
    calls = []

    def fail_on_second(self, key, value, timestamp=0.0):
        calls.append(key)
        if len(calls) == 2:
            raise OSError("disk full")
        original(self, key, value, timestamp)

    original = MmapedDict.write_value
    monkeypatch.setattr(metrics_archive.MmapedDict, "write_value", fail_on_second)
    archive_dead_process(DEAD_PID, str(tmp_path))  # logged, not raised
    monkeypatch.undo()
    assert read_samples(tmp_path / "counter_0.db") == {"a": 10.0}
    assert read_samples(tmp_path / f"counter_{DEAD_PID}.db") == {"a": 1.0, "b": 2.0}
    # The next attempt adds them exactly once.
    archive_dead_process(DEAD_PID, str(tmp_path))
    assert read_samples(tmp_path / "counter_0.db") == {"a": 11.0, "b": 2.0}
    assert not (tmp_path / f"counter_{DEAD_PID}.db").exists()


def test_a_failed_removal_is_logged_not_raised(tmp_path, monkeypatch, caplog):
    write_samples(tmp_path / f"counter_{DEAD_PID}.db", {"a": 1.0})

    def refuse(_path):
        raise PermissionError("read-only")

    monkeypatch.setattr(metrics_archive.os, "unlink", refuse)
    archive_dead_process(DEAD_PID, str(tmp_path))
    assert "could not archive" in caplog.text


@pytest.mark.parametrize("kind,old,new,merged", [
    ("counter", (1.0, 0.0), (2.0, 5.0), (3.0, 5.0)),
    ("gauge_max", (4.0, 0.0), (2.0, 5.0), (4.0, 0.0)),
    ("gauge_mostrecent", (4.0, 1.0), (2.0, 5.0), (2.0, 5.0)),
    ("gauge_min", None, (2.0, 5.0), (2.0, 5.0)),
])  # fmt: skip
def test_merge_sample(kind, old, new, merged):
    assert metrics_archive.merge_sample(kind, old, new) == merged
