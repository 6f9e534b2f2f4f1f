"""The supervisor launcher and the /metrics reader, without a supervisor: the command line
and environment the launcher builds, and how an exposition is read. The end-to-end tests,
`miniscan demo`'s real run and the benchmark's smoke test start the real command with them.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import sys
import time

from contracts import defaults
from testkit import launch
from testkit.emulator import free_port
from testkit.scrape import (
    fetch,
    fetch_text,
    histogram_buckets,
    parse_samples,
    sample_values,
    scrape_values,
    totals_by_name,
)

EXPOSITION = """\
# HELP miniscan_messages_acked_total Messages acknowledged.
# TYPE miniscan_messages_acked_total counter
miniscan_messages_acked_total 4095.0
# TYPE miniscan_messages_dead_lettered_total counter
miniscan_messages_dead_lettered_total{reason="invalid_json"} 15.0
miniscan_messages_dead_lettered_total{reason="missing_field:port"} 2.0
# TYPE miniscan_children_alive gauge
miniscan_children_alive{role="decoder"} 2.0
miniscan_children_alive{role="writer"} 1.0
# TYPE odd gauge
odd{path="C:\\\\x",quote="say \\"hi\\""} 1.0
# TYPE miniscan_end_to_end_latency_seconds histogram
miniscan_end_to_end_latency_seconds_bucket{le="0.5"} 30.0
miniscan_end_to_end_latency_seconds_bucket{le="0.1"} 10.0
miniscan_end_to_end_latency_seconds_bucket{le="+Inf"} 40.0
miniscan_end_to_end_latency_seconds_count 40.0
miniscan_end_to_end_latency_seconds_sum 9.0
"""


def test_sample_keys_are_spelled_as_the_exposition_spells_them():
    values = sample_values(parse_samples(EXPOSITION))
    assert values["miniscan_messages_acked_total"] == 4095
    assert values['miniscan_messages_dead_lettered_total{reason="invalid_json"}'] == 15
    assert values['miniscan_children_alive{role="decoder"}'] == 2
    assert values['odd{path="C:\\\\x",quote="say \\"hi\\""}'] == 1
    # every sample line of the text, and nothing else
    sample_lines = [line for line in EXPOSITION.splitlines() if not line.startswith("#")]
    assert sorted(values) == sorted(line.rpartition(" ")[0] for line in sample_lines)


def test_totals_sum_over_labels_and_buckets_come_sorted():
    samples = parse_samples(EXPOSITION)
    assert totals_by_name(samples)["miniscan_messages_dead_lettered_total"] == 17
    assert histogram_buckets(samples, "miniscan_end_to_end_latency_seconds") == (
        (0.1, 10.0),
        (0.5, 30.0),
        (math.inf, 40.0),
    )
    assert histogram_buckets(samples, "no_such_histogram") == ()


def test_only_keeps_the_named_metrics_and_reads_them_the_same():
    acked = "miniscan_messages_acked_total"
    assert sample_values(parse_samples(EXPOSITION, only=(acked,))) == {acked: 4095}
    latency = "miniscan_end_to_end_latency_seconds"
    everything = parse_samples(EXPOSITION)
    assert parse_samples(EXPOSITION, only=(latency,)) == [
        sample for sample in everything if sample.name.startswith(latency)
    ]
    assert parse_samples(EXPOSITION, only=("no_such_metric",)) == []


def test_nothing_listening_reads_as_nothing_rather_than_an_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/metrics"
        assert fetch(url, timeout=2) == (0, b"")
        assert fetch_text(url, timeout=2) is None
        assert scrape_values(url, timeout=2) == {}


def test_the_command_line_holds_the_settings_then_the_callers_flags():
    settings = launch.LaunchOptions(
        "127.0.0.1:8085", "x.db", workers=3, metrics_port=9999, extra_args=("--batch-size", "5")
    )
    args = launch.supervisor_args(settings)
    assert args[0].endswith("miniscan-supervisor") or args[:2] == [sys.executable, "-c"]
    flags = args[args.index("--workers") :]
    assert flags == [
        "--workers", "3",
        "--project", defaults.DEFAULT_PROJECT,
        "--subscription", defaults.DEFAULT_SUBSCRIPTION,
        "--metrics-host", "127.0.0.1",
        "--metrics-port", "9999",
        "--batch-size", "5",
    ]  # fmt: skip


def test_no_workers_leaves_the_supervisors_own_default():
    args = launch.supervisor_args(launch.LaunchOptions("h:1", "x.db", metrics_port=1))
    assert "--workers" not in args


def test_the_environment_points_at_the_emulator_and_owns_no_stale_metrics_folder(monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/somebody/elses")
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "elsewhere:1")
    env = launch.child_env("127.0.0.1:8085")
    assert env["PUBSUB_EMULATOR_HOST"] == "127.0.0.1:8085"
    assert "PROMETHEUS_MULTIPROC_DIR" not in env
    assert launch.child_env("h:1", "/ours")["PROMETHEUS_MULTIPROC_DIR"] == "/ours"


def test_launch_starts_the_command_in_its_own_group_on_a_free_port(monkeypatch, tmp_path):
    """With a stand-in for the supervisor that prints its arguments and waits for SIGTERM."""
    stand_in = [sys.executable, "-c", "import sys, time; print(sys.argv[1:], flush=True);"
                " time.sleep(60)"]  # fmt: skip
    monkeypatch.setattr(launch, "command_for", lambda script, module: stand_in)
    supervisor = launch.launch_supervisor(
        launch.LaunchOptions("h:1", "x.db"), tmp_path / "supervisor.log"
    )
    try:
        assert supervisor.metrics_port > 0
        assert os.getpgid(supervisor.process.pid) == supervisor.process.pid
        deadline = time.monotonic() + 30
        while "--metrics-port" not in supervisor.log():
            assert time.monotonic() < deadline, "the stand-in never started"
            time.sleep(0.05)
        assert f"'--metrics-port', '{supervisor.metrics_port}'" in supervisor.log()
        assert not supervisor.ready(timeout=0.5)
        assert supervisor.stop(timeout=5) == -signal.SIGTERM and not supervisor.killed
    finally:
        supervisor.kill()


def test_wait_ready_gives_up_at_once_when_the_process_exits(monkeypatch, tmp_path):
    monkeypatch.setattr(launch, "command_for", lambda script, module: [sys.executable, "-c", ""])
    port = free_port()
    supervisor = launch.launch_supervisor(
        launch.LaunchOptions("h:1", "x.db", metrics_port=port), tmp_path / "s.log"
    )
    try:
        started = time.monotonic()
        assert supervisor.wait_ready(timeout=60) is False
        assert time.monotonic() - started < 30
        assert supervisor.process.poll() == 0
    finally:
        supervisor.kill()
