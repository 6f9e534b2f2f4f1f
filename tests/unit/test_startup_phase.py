"""Before the tree runs, /healthz says alive and /readyz not ready, each naming the start-up's
step; a step that lasts says so in the log every 30 s; then the tree's own probes answer."""

from __future__ import annotations

import logging
import time

from supervisor.startup_phase import StartupPhase


def test_the_probes_name_the_step_until_the_tree_takes_over() -> None:
    phase = StartupPhase()
    phase.step("opening the database")
    alive, said = phase.is_alive()
    assert alive and said.startswith("starting: opening the database (")
    assert phase.is_ready() == (False, said)
    phase.hand_over(lambda: (True, "tree alive"), lambda: (False, "no decoder ready"))
    assert phase.is_alive() == (True, "tree alive")
    assert phase.is_ready() == (False, "no decoder ready")


def test_a_slow_step_says_so_while_it_lasts(caplog) -> None:
    caplog.set_level(logging.INFO, logger="supervisor.startup_phase")
    phase = StartupPhase()
    with phase.slow_step("opening the database", "a migration counts every row", 0.05):
        time.sleep(0.3)
        assert "opening the database" in phase.is_ready()[1]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) >= 3
    assert lines[0].startswith("still opening the database after 0 s: a migration counts")
    with phase.slow_step("checking", "quick", 0.5):
        pass
    time.sleep(0.6)
    assert len(caplog.records) == len(lines)  # a quick step says nothing, and stops talking
