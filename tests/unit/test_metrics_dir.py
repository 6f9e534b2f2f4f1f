"""The metrics directory: stale samples go, nothing else an operator keeps there does."""

from __future__ import annotations

import os

from supervisor.metrics_dir import ENV, prepare_metrics_dir


def test_operator_directory_keeps_everything_but_stale_sample_files(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    (shared / "data").mkdir(parents=True)
    kept = ["notes.txt", "data/scan_results.db", "counter_backup.db", "gauge_livesum_12.db.bak"]
    for name in kept:
        (shared / name).write_text("keep me")
    stale = ["counter_123.db", "histogram_9.db", "gauge_livesum_77.db", "gauge_mostrecent_1.db"]
    for name in stale:
        (shared / name).write_bytes(b"\0" * 16)
    monkeypatch.setenv(ENV, str(shared))
    assert prepare_metrics_dir() == str(shared)
    for name in kept:
        assert (shared / name).read_text() == "keep me", name
    assert not any((shared / name).exists() for name in stale)


def test_missing_operator_directory_is_created(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b"
    monkeypatch.setenv(ENV, str(target))
    assert prepare_metrics_dir() == str(target) and target.is_dir()


def test_without_the_variable_a_fresh_directory_is_made(monkeypatch):
    monkeypatch.setenv(ENV, "set so that monkeypatch restores the variable's absence")
    monkeypatch.delenv(ENV)
    path = prepare_metrics_dir()
    assert os.environ[ENV] == path and os.listdir(path) == []
    os.rmdir(path)
