"""Runs the real `miniscan-supervisor` command for end-to-end tests, and watches it.

Owns: starting the command against the session's emulator through `testkit.launch` (the
launcher `miniscan demo` and the benchmark use too), and what only tests ask of it (the pid
of a child's nth spawn, every child pid, an endpoint's HTTP status). Bounded waits are
`testkit.waiting.wait_until`.

Never: sleep for a fixed time to "let things settle"; every wait polls a condition with a
deadline.
"""

from __future__ import annotations

import os
from pathlib import Path

from testkit.launch import LaunchOptions, SupervisorProcess, launch_supervisor
from testkit.processes import BIN
from testkit.scrape import fetch

__all__ = ["BIN", "RunningSupervisor", "pid_alive"]


class RunningSupervisor(SupervisorProcess):
    """`miniscan-supervisor` on a test's Pub/Sub target, alone in its process group."""

    def __init__(self, target, db_path: Path, log_path: Path, *extra: str, workers: int = 2):
        settings = LaunchOptions(
            target.host,
            str(db_path),
            project=target.project,
            subscription=target.subscription,
            workers=workers,
            extra_args=extra,
        )
        launched = launch_supervisor(settings, log_path)
        super().__init__(launched.child, launched.options)

    def child_pid(self, name: str, nth: int = 1) -> int | None:
        """The pid of the nth spawn of child `name` (1 = the first), from the log."""
        pids = [pid for spawned, pid in self.spawned() if spawned == name]
        return pids[nth - 1] if len(pids) >= nth else None

    def all_child_pids(self) -> list[int]:
        return [pid for _, pid in self.spawned()]

    def http_status(self, path: str) -> int:
        """The status `path` answers with; 0 when nothing answers."""
        return fetch(self.url(path), timeout=5)[0]

    def kill_tree(self) -> None:
        """Last-resort clean-up so that a failing test leaves nothing running."""
        self.kill()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False
