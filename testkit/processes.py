"""Child processes started alone in their process group, and stopped on request.

Owns: starting a console script with its output in a log file and its own process group
(pgid == pid), so that a Ctrl-C in the terminal reaches only its parent; stopping one such
child (signal the leader, wait, then kill whatever is left in its group); and counting a
parent's own stop requests (Ctrl-C, SIGTERM), which the waits here look at. `testkit.launch`
starts the supervisor through here for the demo, the end-to-end tests and the benchmark;
`miniscan demo` starts the scanner through here too.

Never: signal a process it did not start, or act inside a signal handler (the handler only
counts; the waits look at the count).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

TICK_S = 0.1  # how soon the loops notice a signal, a child's exit or a deadline
GROUP_GRACE_S = 5.0  # a child's own children may outlive it by a moment, not longer
BIN = Path(sys.executable).parent


class SpawnFailed(Exception):
    """A command could not be started at all; the message is one line."""


class StopRequests:
    """Counts Ctrl-C and SIGTERM. The first asks for an orderly stop; a second one cuts the
    waits short and kills what is left."""

    def __init__(self) -> None:
        self.count = 0

    def handle(self, signum: int, frame: object) -> None:
        self.count += 1

    @property
    def requested(self) -> bool:
        return self.count > 0

    @property
    def forced(self) -> bool:
        return self.count > 1


@contextmanager
def stop_on_signals(stop: StopRequests) -> Iterator[None]:
    previous = {sig: signal.signal(sig, stop.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class SpawnedChild:
    """A command started by `spawn_child`, alone in its process group (pgid == pid)."""

    name: str
    process: subprocess.Popen
    log_path: Path
    killed: bool = False

    def last_log_line(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""


def command_for(script: str, module: str) -> list[str]:
    """The console script next to this interpreter, or the same entry point through it."""
    path = BIN / script
    if path.is_file() and os.access(path, os.X_OK):
        return [str(path)]
    return [sys.executable, "-c", f"from {module} import main; main()"]


def spawn_child(name: str, args: list[str], env: dict[str, str], log_path: Path) -> SpawnedChild:
    """Start `args` alone in a new process group, its output appended to `log_path`."""
    with open(log_path, "ab") as log:
        try:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise SpawnFailed(f"cannot start {name} ({args[0]}): {exc.strerror}") from None
    return SpawnedChild(name, process, log_path)


def wait_for_exit(process: subprocess.Popen, timeout: float, stop: StopRequests) -> bool:
    """True once `process` exited; False after `timeout` s or a second Ctrl-C."""
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if stop.forced or time.monotonic() >= deadline:
            return False
        time.sleep(TICK_S)
    return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def stop_child(
    child: SpawnedChild, signum: int, timeout: float, stop: StopRequests | None = None
) -> int:
    """Ask `child` to stop, wait for it, then make sure its whole group is gone.

    Only the leader is signalled: it stops its own children in its own order. Whatever is
    still running after the wait (or that outlived the leader) is killed. Returns the exit
    code (negative: killed by that signal). Without `stop` (tests, benchmarks) no second
    Ctrl-C can cut the waits short.
    """
    stop = stop or StopRequests()
    if child.process.poll() is None:
        child.process.send_signal(signum)
    if not wait_for_exit(child.process, timeout, stop):
        child.killed = True
        kill_group(child.process.pid)
        child.process.wait()
    deadline = time.monotonic() + GROUP_GRACE_S
    while group_alive(child.process.pid):
        if stop.forced or time.monotonic() >= deadline:
            child.killed = True
            kill_group(child.process.pid)
            break
        time.sleep(TICK_S)
    return child.process.returncode
