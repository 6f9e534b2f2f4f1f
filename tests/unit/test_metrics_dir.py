"""The metrics directory: stale samples go, nothing else an operator keeps there does."""

from __future__ import annotations

import os

from supervisor.metrics_dir import ENV, MetricsDir, prepare_metrics_dir, remove_metrics_dir


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
    assert prepare_metrics_dir() == (str(shared), False)
    for name in kept:
        assert (shared / name).read_text() == "keep me", name
    assert not any((shared / name).exists() for name in stale)


def test_missing_operator_directory_is_created(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b"
    monkeypatch.setenv(ENV, str(target))
    assert prepare_metrics_dir() == (str(target), False) and target.is_dir()


def test_without_the_variable_a_fresh_directory_is_made(monkeypatch):
    monkeypatch.setenv(ENV, "set so that monkeypatch restores the variable's absence")
    monkeypatch.delenv(ENV)
    path, made_here = prepare_metrics_dir()
    assert made_here and os.environ[ENV] == path and os.listdir(path) == []
    os.rmdir(path)


def test_at_exit_our_directory_goes_and_the_operators_keeps_all_but_samples(tmp_path):
    ours = tmp_path / "ours"
    (ours / "sub").mkdir(parents=True)
    (ours / "counter_1.db").write_bytes(b"\0" * 16)
    remove_metrics_dir(MetricsDir(str(ours), made_here=True))
    assert not ours.exists()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "counter_1.db").write_bytes(b"\0" * 16)
    (theirs / "notes.txt").write_text("keep me")
    remove_metrics_dir(MetricsDir(str(theirs), made_here=False))
    assert sorted(os.listdir(theirs)) == ["notes.txt"]
