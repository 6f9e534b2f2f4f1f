"""Runs the real `miniscan-supervisor` command for end-to-end tests, and watches it.

Owns: starting the command as a subprocess against the session's emulator, reading child
pids and events from its log, scraping its /metrics, and bounded polling for a condition.

Never: sleep for a fixed time to "let things settle"; every wait polls a condition with a
deadline.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from demo.emulator import free_port

BIN = Path(sys.executable).parent


def wait_until(condition: Callable[[], object], timeout: float, what: str, every: float = 0.2):
    """Poll `condition` until it returns something truthy; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class RunningSupervisor:
    def __init__(self, target, db_path: Path, log_path: Path, *extra: str, workers: int = 2):
        self.metrics_port = free_port()
        self.log_path = log_path
        self.args = [
            str(BIN / "miniscan-supervisor"),
            "--workers", str(workers),
            "--project", target.project,
            "--subscription", target.subscription,
            "--db", str(db_path),
            "--metrics-host", "127.0.0.1",
            "--metrics-port", str(self.metrics_port),
            *extra,
        ]  # fmt: skip
        env = {**os.environ, "PUBSUB_EMULATOR_HOST": target.host}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            self.args, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def child_pid(self, name: str, nth: int = 1) -> int | None:
        """The pid of the nth spawn of child `name` (1 = the first), from the log."""
        pids = re.findall(rf"spawned {re.escape(name)} \(pid (\d+)\)", self.log())
        return int(pids[nth - 1]) if len(pids) >= nth else None

    def all_child_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"spawned \S+ \(pid (\d+)\)", self.log())]

    def metrics(self) -> dict[str, float]:
        """Scrape /metrics into {sample name with labels: value}; {} when not up yet."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            text = urllib.request.urlopen(url, timeout=5).read().decode()
        except OSError:
            return {}
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def http_status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5):
                return 200
        except urllib.error.HTTPError as error:
            return error.code

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._log.close()

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill_tree(self) -> None:
        """Last-resort clean-up so that a failing test leaves nothing running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pid in self.all_child_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self._log.close()


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
