"""`miniscan-supervisor` refuses a bad setup with one line and a documented exit code."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from datetime import datetime
from multiprocessing import Pipe

import pytest
from scan_traffic import publish_all
from supervisor_harness import BIN, RunningSupervisor

from broker.subscription import Subscription
from contracts.lifecycle import CannotStart
from store.writer_process import WriterRole
from store.writer_settings import WriterSettings
from supervisor.run import StartupError, wait_for_database
from supervisor.settings import SupervisorSettings
from testkit.emulator import free_port
from workers.decoder_process import DecoderRole
from workers.decoder_settings import DecoderSettings


def run_cli(*args: str, env: dict | None = None, timeout: float = 60):
    return subprocess.run(
        [str(BIN / "miniscan-supervisor"), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize(
    "args, complaint",
    [
        (["--workers", "0"], "--workers"),
        (["--batch-size", "lots"], "--batch-size"),
        (["--log-format", "xml"], "--log-format"),
        (["--metrics-port", "70000"], "--metrics-port"),
    ],
)
def test_bad_flags_get_one_line_and_exit_2(args, complaint):
    result = run_cli(*args)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert "Traceback" not in result.stderr


def test_flags_are_readable_from_the_environment():
    result = run_cli(env={"MINISCAN_WORKERS": "0"})
    assert result.returncode == 2 and "--workers" in result.stderr


def test_help_documents_every_flag_and_the_exit_codes():
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in ("--workers", "--project", "--subscription", "--db", "--batch-size",
                 "--batch-timeout", "--batch-bytes", "--max-in-flight-bytes", "--metrics-host",
                 "--metrics-port", "--shutdown-timeout",
                 "--log-level", "--log-format"):  # fmt: skip
        assert flag in result.stdout
    assert "Exit codes" in result.stdout


@pytest.mark.emulator
def test_missing_subscription_is_a_one_line_startup_error(pubsub_emulator, tmp_path):
    result = run_cli("--subscription", "no-such-sub", "--db", str(tmp_path / "x.db"),
                     "--metrics-port", "0")  # fmt: skip
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1].startswith("miniscan-supervisor: error:")
    assert "no-such-sub does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_pubsub_is_a_bounded_one_line_error(tmp_path):
    started = time.monotonic()
    result = run_cli("--db", str(tmp_path / "x.db"), "--metrics-port", "0",
                     env={"PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}"})  # fmt: skip
    assert result.returncode == 3
    assert "did not answer" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 45


@pytest.mark.emulator
def test_a_foreign_database_file_is_refused_untouched(pubsub_target, tmp_path):
    foreign = tmp_path / "notes.db"
    foreign.write_bytes(b"these are my notes, not a database" * 10)
    before = foreign.read_bytes()
    result = run_cli(
        "--project", pubsub_target.project, "--subscription", pubsub_target.subscription,
        "--db", str(foreign), "--metrics-port", "0",
    )  # fmt: skip
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert foreign.read_bytes() == before


@pytest.mark.emulator
def test_leases_of_held_messages_are_extended_past_the_ack_deadline(pubsub_target):
    """A message held longer than the subscription's 10 s deadline is not redelivered while
    its decoder extends the lease, and comes back at once when nacked."""
    publish_all(pubsub_target.project, pubsub_target.topic, [b'{"x": 1}'])
    holder = Subscription(pubsub_target.project, pubsub_target.subscription)
    other = Subscription(pubsub_target.project, pubsub_target.subscription)
    supervisor_end, theirs = Pipe()
    role = DecoderRole(0, holder, theirs, DecoderSettings(lease_s=10))
    try:
        deadline = time.monotonic() + 20
        while not role.held and time.monotonic() < deadline:
            role.pull_once(timeout=5)
        assert len(role.held) == 1
        assert supervisor_end.poll(5), "the decoder sent nothing on"
        held_until = time.monotonic() + 14  # past the 10 s ack deadline
        while time.monotonic() < held_until:
            role.extend_leases_if_due()
            assert other.pull(10, timeout=1) == [], "redelivered while its lease was held"
        role.nack_all("test")
        again = []
        deadline = time.monotonic() + 10
        while not again and time.monotonic() < deadline:
            again = other.pull(10, timeout=2)
        assert [m.data for m in again] == [b'{"x": 1}']
    finally:
        holder.close()
        other.close()


def test_settings_over_the_containers_memory_limit_are_refused_at_start(tmp_path):
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text(f"{256 * 1024 * 1024}\n")
    result = run_cli("--workers", "16", "--cgroup-root", str(cgroup),
                     "--db", str(tmp_path / "x.db"), "--metrics-port", "0")  # fmt: skip
    assert result.returncode == 3
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("miniscan-supervisor: error: --workers 16 ")
    assert "memory limit of 256 MiB" in line
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything was touched


def test_only_settings_the_operator_gave_are_kept_from_lowering(monkeypatch):
    from supervisor.cli import given_settings, settings_from_options
    from supervisor.cli import main as command
    from supervisor.memory_fit import MIB, MemoryTooSmall, fit_to_memory

    def settings_of(*args):
        context = command.make_context("miniscan-supervisor", list(args))
        return settings_from_options(context.params, given_settings(context))

    # Nothing given: 64 CPUs under a 1 GiB limit start fewer decoders, not exit 3.
    assert settings_of().given == frozenset()
    fitted = fit_to_memory(dataclasses.replace(settings_of(), workers=64), 1024 * MIB)
    assert fitted.workers < 64
    # A value equal to its default still counts as given, from a flag or the environment.
    monkeypatch.setenv("MINISCAN_WORKERS", "64")
    given = settings_of("--max-in-flight-bytes", str(8 * MIB))
    assert given.given == {"workers", "decoder.max_in_flight_bytes"}
    with pytest.raises(MemoryTooSmall, match="--workers 64"):
        fit_to_memory(given, 1024 * MIB)


@pytest.mark.parametrize("given", ["soon", "-5", "1x", "nan", "inf", "-inf", "1e999"])
def test_a_bad_max_clock_skew_is_one_line_and_exit_2(given):
    result = run_cli("--max-clock-skew", given)
    assert result.returncode == 2
    assert "--max-clock-skew" in result.stderr and "Traceback" not in result.stderr


def test_max_clock_skew_takes_seconds_or_a_duration(monkeypatch):
    from supervisor.cli import main as command
    from supervisor.cli import settings_from_options

    for typed, seconds in (("90", 90.0), ("90m", 5400.0), ("1h", 3600.0)):
        context = command.make_context("miniscan-supervisor", ["--max-clock-skew", typed])
        assert settings_from_options(context.params).decoder.max_clock_skew_s == seconds
    context = command.make_context("miniscan-supervisor", [])
    assert settings_from_options(context.params).decoder.max_clock_skew_s == 3600.0
    monkeypatch.setenv("MINISCAN_MAX_CLOCK_SKEW", "2h")
    context = command.make_context("miniscan-supervisor", [])
    assert settings_from_options(context.params).decoder.max_clock_skew_s == 7200.0


@pytest.mark.emulator
def test_json_logs_carry_what_google_cloud_reads_and_who_wrote_them(pubsub_target, tmp_path):
    """Issue 28: `severity`, `message` and `time` (RFC 3339), and the process of the tree
    that wrote each line (`role`, `pid`), read back from a real run's stderr."""
    tree = RunningSupervisor(
        pubsub_target, tmp_path / "x.db", tmp_path / "log", "--log-format", "json",
        "--log-level", "DEBUG", workers=1,
    )  # fmt: skip
    try:
        assert tree.wait_ready(timeout=60), tree.log()
        # To the whole group, as a terminal's Ctrl-C would: each child then logs its stop.
        os.killpg(tree.process.pid, signal.SIGTERM)
        tree.process.wait(timeout=60)
    finally:
        tree.kill_tree()
    lines = [json.loads(line) for line in tree.log().splitlines() if line.startswith("{")]
    assert lines, tree.log()
    for line in lines:
        assert {"severity", "message", "time", "role", "pid"} <= set(line), line
        assert line["severity"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        stamp = datetime.fromisoformat(line["time"].replace("Z", "+00:00"))
        assert line["time"].endswith("Z") and abs(time.time() - stamp.timestamp()) < 300
    writers = {(line["role"], line["pid"]) for line in lines}
    assert {"supervisor", "decoder-0"} <= {role for role, _ in writers}, writers
    assert len({pid for _, pid in writers}) == len(writers), "one pid per process"


def test_the_supervisor_does_not_wait_for_a_file_it_can_never_open(tmp_path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    path = not_a_folder / "scan_results.db"
    settings = SupervisorSettings(writer=WriterSettings(db_path=str(path)))
    with pytest.raises(StartupError, match="cannot create the folder"):
        wait_for_database(settings)
    with pytest.raises(CannotStart, match="cannot create the folder"):
        WriterRole.open(Pipe()[1], settings.writer)
