"""A child whose role raises: its crash report carries the traceback, and the supervisor logs
it, once (the child does not print it too)."""

from __future__ import annotations

import logging
import multiprocessing
import time

from supervisor import children
from supervisor.children import ChildTargets
from supervisor.logs import CHILD_TRACEBACK, TextFormatter, configure_logging
from supervisor.settings import SupervisorSettings
from supervisor.tree import Supervisor

TRACEBACK = "Traceback (most recent call last)"


def open_a_role_that_raises():
    raise RuntimeError("the role broke while opening")


def writer_whose_role_raises(link, settings, *role_args) -> None:
    configure_logging("writer", "INFO", "text")  # anything the child logs reaches stderr
    children.drive_role("writer", link, lambda: False, open_a_role_that_raises)


def sleep_quietly(link, settings, *role_args) -> None:
    time.sleep(60)


def test_a_role_that_raises_has_its_traceback_logged_once_by_the_supervisor(caplog, capfd):
    targets = ChildTargets(writer=writer_whose_role_raises, decoder=sleep_quietly)
    supervisor = Supervisor(
        SupervisorSettings(workers=1), multiprocessing.get_context("spawn"), targets
    )
    caplog.set_level(logging.INFO, logger="supervisor.tree")
    try:
        supervisor.spawn_writer()
        deadline = time.monotonic() + 30
        while "writer" in supervisor.children:
            assert time.monotonic() < deadline, "the crashed writer was never reaped"
            supervisor.run_once()
    finally:
        for child in supervisor.children.values():
            child.process.kill()
            child.process.join()
    child_output = capfd.readouterr()
    assert TRACEBACK not in child_output.err + child_output.out, "the child printed it too"
    [crash] = [r for r in caplog.records if getattr(r, CHILD_TRACEBACK, "")]
    assert crash.levelno == logging.ERROR
    assert crash.getMessage() == "writer crashed: RuntimeError: the role broke while opening"
    traceback = getattr(crash, CHILD_TRACEBACK)
    assert traceback.startswith(TRACEBACK)
    assert "open_a_role_that_raises" in traceback  # where it was raised
    # On the supervisor's stderr it is one line, the traceback's lines joined by " | ".
    line = TextFormatter("supervisor").format(crash)
    assert "\n" not in line and line.count(TRACEBACK) == 1
    assert "writer died (RuntimeError: the role broke while opening)" in caplog.text
