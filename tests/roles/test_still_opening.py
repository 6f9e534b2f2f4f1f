"""A writer whose open takes longer than the start-up timeout, saying `StillOpening` (a schema
migration counting 100M rows takes minutes), is left to finish; one that says nothing is
killed as before. Without this an upgrade at scale was killed and retried forever."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing import Pipe

import pytest

from contracts.messages import StillOpening
from store.still_opening import still_opening
from supervisor import children
from supervisor.children import ChildTargets
from supervisor.settings import SupervisorSettings
from supervisor.tree import Supervisor

SLOW_OPEN_S = 3.0
STARTUP_TIMEOUT_S = 1.0


class IdleRole:
    finished = False

    def run_once(self) -> bool:
        time.sleep(0.1)
        return True

    def handle_stop_signal(self) -> None:
        self.finished = True

    def shutdown(self) -> None:
        pass


def _slow_open(link, says_so: bool):
    def open_role() -> IdleRole:
        if says_so:
            with still_opening(link, "writer", interval_s=0.2):
                time.sleep(SLOW_OPEN_S)
        else:
            time.sleep(SLOW_OPEN_S)
        return IdleRole()

    return open_role


def writer_that_says_so(link, settings, *role_args) -> None:
    children.drive_role("writer", link, lambda: False, _slow_open(link, says_so=True))


def writer_that_says_nothing(link, settings, *role_args) -> None:
    children.drive_role("writer", link, lambda: False, _slow_open(link, says_so=False))


def sleep_quietly(link, settings, *role_args) -> None:
    time.sleep(60)


@pytest.mark.parametrize("target, survives", [(writer_that_says_so, True),
                                              (writer_that_says_nothing, False)])  # fmt: skip
def test_a_long_open_that_says_so_is_not_killed(target, survives) -> None:
    settings = SupervisorSettings(workers=1, startup_timeout_s=STARTUP_TIMEOUT_S)
    targets = ChildTargets(writer=target, decoder=sleep_quietly)
    supervisor = Supervisor(settings, multiprocessing.get_context("spawn"), targets)
    try:
        supervisor.spawn_writer()
        writer = supervisor.children["writer"]
        deadline = time.monotonic() + SLOW_OPEN_S + 20
        while not writer.ready and not writer.killed:
            assert time.monotonic() < deadline, "neither ready nor killed"
            supervisor.run_once()
        assert writer.ready is survives and writer.killed is not survives
    finally:
        for child in supervisor.children.values():
            child.process.kill()
            child.process.join()


def test_still_opening_speaks_only_while_the_body_runs() -> None:
    ours, theirs = Pipe()
    with still_opening(theirs, "writer", interval_s=0.05):
        time.sleep(0.4)
    said = []
    while ours.poll(0.2):
        said.append(ours.recv())
    assert len(said) >= 4 and all(isinstance(m, StillOpening) for m in said)
    assert said[-1].seconds < 0.5 and said[0].seconds < said[-1].seconds
    with still_opening(theirs, "writer", interval_s=0.5):
        pass  # a quick open says nothing
    assert not ours.poll(0.7)


def test_the_writer_role_says_still_opening_while_its_store_opens(monkeypatch, tmp_path) -> None:
    from store import still_opening as module
    from store import writer_process
    from store.writer_settings import WriterSettings

    real_open = writer_process.open_store

    def slow_open(*args, **kwargs):
        time.sleep(0.5)  # as a migration counting every row would, only shorter
        return real_open(*args, **kwargs)

    monkeypatch.setattr(writer_process, "open_store", slow_open)
    monkeypatch.setattr(module, "INTERVAL_S", 0.1)
    ours, theirs = Pipe()
    role = writer_process.WriterRole.open(theirs, WriterSettings(db_path=str(tmp_path / "s.db")))
    try:
        said = []
        while ours.poll(0.2):
            said.append(ours.recv())
        assert len(said) >= 3 and {type(m) for m in said} == {StillOpening}
    finally:
        role.shutdown()
