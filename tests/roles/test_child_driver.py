"""The one driver of every child (`supervisor.children.drive_role`), run in-process: it exits
with SystemExit, which a test catches, after telling the supervisor how the role ended."""

from __future__ import annotations

from multiprocessing import Pipe

import pytest
from role_doubles import (
    pulled,
    read_sent,
    record,
    rows,
    without_heartbeats,
    writer_settings,
)

from contracts import messages
from contracts.exit_codes import EXIT_ERROR, EXIT_OK, EXIT_STARTUP
from contracts.lifecycle import NotAvailableYet
from store.errors import StoreError
from store.writer_process import WriterRole
from supervisor.children import drive_role
from workers.pulled import decode_pulled


class ScriptedRole:
    """A role whose run_once does what the test says, recording the lifecycle calls."""

    def __init__(self, turn):
        self.turn = turn
        self.finished = False
        self.crash_reason = None
        self.calls: list[str] = []

    def run_once(self, timeout: float = 0.5) -> bool:
        self.calls.append("run_once")
        self.turn(self)
        return not self.finished

    def handle_stop_signal(self) -> None:
        self.calls.append("signal")
        self.finished = True

    def shutdown(self) -> None:
        self.calls.append("shutdown")


def drive(theirs, open_role, stop_requested=lambda: False) -> int:
    """Run the driver in-process; return the exit code it chose."""
    with pytest.raises(SystemExit) as exited:
        drive_role("writer", theirs, stop_requested, open_role)
    return exited.value.code


def test_driver_runs_the_writer_from_open_to_a_graceful_stop(tmp_path):
    supervisor_end, theirs = Pipe()
    supervisor_end.send(decode_pulled(0, pulled(2), 0.0))
    supervisor_end.send(messages.Stop())
    code = drive(theirs, lambda: WriterRole.open(theirs, writer_settings(tmp_path / "w.db")))
    assert code == EXIT_OK
    sent = without_heartbeats(read_sent(supervisor_end))
    assert [type(m) for m in sent] == [messages.Ready, messages.AckBatch, messages.Stopped]
    assert len(rows(tmp_path / "w.db")) == 2


def test_driver_on_sigterm_shuts_the_writer_down_without_committing(tmp_path):
    supervisor_end, theirs = Pipe()
    supervisor_end.send(decode_pulled(0, pulled(2), 0.0))
    opened = []

    def open_writer():
        opened.append(WriterRole.open(theirs, writer_settings(tmp_path / "w.db")))
        return opened[0]

    code = drive(theirs, open_writer, stop_requested=lambda: True)
    assert code == EXIT_OK
    assert read_sent(supervisor_end) == [messages.Ready(role="writer")]
    assert rows(tmp_path / "w.db") == []
    with pytest.raises(StoreError, match="closed"):
        opened[0].store.write_batch([record()])


def test_driver_turns_a_refused_start_into_startup_failed_and_exit_3(tmp_path):
    foreign = tmp_path / "notes.db"
    foreign.write_bytes(b"not a database" * 10)
    supervisor_end, theirs = Pipe()
    code = drive(theirs, lambda: WriterRole.open(theirs, writer_settings(foreign)))
    assert code == EXIT_STARTUP
    (failed,) = read_sent(supervisor_end)
    assert isinstance(failed, messages.StartupFailed) and failed.role == "writer"


def test_driver_reports_a_crash_after_shutting_the_role_down():
    def boom(role):
        raise RuntimeError("boom")

    role = ScriptedRole(boom)
    supervisor_end, theirs = Pipe()
    assert drive(theirs, lambda: role) == EXIT_ERROR
    assert role.calls == ["run_once", "shutdown"]
    ready, crashed = read_sent(supervisor_end)
    assert ready == messages.Ready(role="writer")
    assert (crashed.role, crashed.reason) == ("writer", "RuntimeError: boom")
    # The traceback travels with the report, ending where it was raised.
    assert crashed.traceback.startswith("Traceback (most recent call last):")
    assert 'raise RuntimeError("boom")' in crashed.traceback


def test_driver_reports_a_role_that_ended_itself_on_an_error():
    def hang(role):
        role.crash_reason, role.finished = "pull hung for 31s", True

    role = ScriptedRole(hang)
    supervisor_end, theirs = Pipe()
    assert drive(theirs, lambda: role) == EXIT_ERROR
    assert role.calls == ["run_once", "shutdown"]
    assert read_sent(supervisor_end)[-1] == messages.Crashed("writer", "pull hung for 31s")


def test_driver_reports_an_unavailable_resource_as_a_crash_to_restart():
    def unavailable():
        raise NotAvailableYet("Pub/Sub did not answer")

    supervisor_end, theirs = Pipe()
    assert drive(theirs, unavailable) == EXIT_ERROR
    assert read_sent(supervisor_end) == [messages.Crashed("writer", "Pub/Sub did not answer")]
