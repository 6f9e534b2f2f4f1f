"""Start `miniscan-supervisor` as a subprocess: for the demo, the end-to-end tests and the
benchmark alike.

Owns: the supervisor's command line for a `LaunchOptions` (the flags every caller sets
the same way, then the caller's own), the environment a child of this machine's emulator
runs in, starting the supervisor alone in its process group with its output in a log file
(`testkit.processes`), knowing when it is ready (/readyz answers 200), what it spawned (its
`spawned <name> (pid <n>)` log lines), reading its /metrics (`testkit.scrape`), and stopping
it: a signal to the leader, a bounded wait, then SIGKILL to whatever is left in its group.

Never: pick a caller's workload or tuning flags, sleep for a fixed time (every wait polls a
condition against a deadline), or signal a process outside the group it started.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from signal import SIGTERM

from contracts import defaults
from testkit.emulator import LOOPBACK, free_port
from testkit.processes import SpawnedChild, command_for, kill_group, spawn_child, stop_child
from testkit.scrape import Sample, fetch, sample_values, scrape_samples

PROBE_TIMEOUT_S = 2.0  # one GET of /readyz
SCRAPE_TIMEOUT_S = 5.0  # one GET of /metrics, which reads every process's sample files
STOP_TIMEOUT_S = 60.0
_SPAWNED = re.compile(r"spawned (\S+) \(pid (\d+)\)")


@dataclass(frozen=True)
class LaunchOptions:
    """What a caller asks of one supervisor it launches, as command-line flags; whatever is
    not asked for is left to the supervisor's own defaults."""

    emulator_host: str  # what PUBSUB_EMULATOR_HOST is set to
    db_path: str
    project: str = defaults.DEFAULT_PROJECT
    subscription: str = defaults.DEFAULT_SUBSCRIPTION
    workers: int | None = None  # None: the supervisor's default (the CPU count)
    metrics_host: str = LOOPBACK
    # 0: a free port, chosen here (to the supervisor itself 0 means no HTTP endpoint at all).
    metrics_port: int = 0
    # None: the supervisor makes a fresh folder of its own; else this one, which it empties.
    metrics_dir: str | None = None
    extra_args: tuple[str, ...] = ()  # more flags, e.g. ("--max-in-flight", "200")


def supervisor_args(options: LaunchOptions) -> list[str]:
    """The command line: everything but the store, which `launch_supervisor` passes in the
    environment."""
    workers = ("--workers", str(options.workers)) if options.workers is not None else ()
    return [
        *command_for("miniscan-supervisor", "supervisor.cli"),
        *workers,
        "--project", options.project,
        "--subscription", options.subscription,
        "--metrics-host", options.metrics_host,
        "--metrics-port", str(options.metrics_port),
        *options.extra_args,
    ]  # fmt: skip


def child_env(emulator_host: str, metrics_dir: str | None = None) -> dict[str, str]:
    """This process's environment for a child that talks to the emulator at `emulator_host`."""
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": emulator_host}
    if metrics_dir is None:
        # An inherited folder may be another supervisor's: this one would wipe it at start.
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    else:
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    return env


class SupervisorProcess:
    """A `miniscan-supervisor` started by `launch_supervisor`, alone in its process group."""

    def __init__(self, child: SpawnedChild, options: LaunchOptions) -> None:
        self.child = child
        self.options = options

    @property
    def process(self) -> subprocess.Popen:
        return self.child.process

    @property
    def log_path(self) -> Path:
        return self.child.log_path

    @property
    def metrics_port(self) -> int:
        return self.options.metrics_port

    @property
    def killed(self) -> bool:
        """Whether the last stop had to kill the supervisor or something left in its group."""
        return self.child.killed

    def url(self, path: str) -> str:
        return f"http://{self.options.metrics_host}:{self.options.metrics_port}{path}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def spawned(self) -> list[tuple[str, int]]:
        """(child name, pid) of every child the supervisor spawned so far, in order."""
        return [(name, int(pid)) for name, pid in _SPAWNED.findall(self.log())]

    # --- its HTTP endpoint ---------------------------------------------------------------

    def ready(self, timeout: float = PROBE_TIMEOUT_S) -> bool:
        return fetch(self.url("/readyz"), timeout)[0] == 200

    def wait_ready(self, timeout: float, every: float = 0.1) -> bool:
        """Poll /readyz every `every` s: True once it answers 200; False as soon as the
        supervisor exited, or after `timeout` s."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if self.ready():
                return self.process.poll() is None
            if time.monotonic() >= deadline:
                return False
            time.sleep(every)
        return False

    def samples(
        self, only: tuple[str, ...] | None = None, timeout: float = SCRAPE_TIMEOUT_S
    ) -> list[Sample]:
        """The samples on /metrics (`only`: of metrics with these name prefixes); [] while
        it is not serving."""
        return scrape_samples(self.url("/metrics"), timeout, only)

    def metrics(
        self, only: tuple[str, ...] | None = None, timeout: float = SCRAPE_TIMEOUT_S
    ) -> dict[str, float]:
        """/metrics as {sample name with labels: value}; {} while it is not serving."""
        return sample_values(self.samples(only, timeout))

    # --- signals and stopping ------------------------------------------------------------

    def signal(self, signum: int = SIGTERM) -> None:
        """Signal the supervisor alone: it stops its own children in its own order."""
        self.process.send_signal(signum)

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """Its exit code once it exits; subprocess.TimeoutExpired after `timeout` s."""
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = STOP_TIMEOUT_S, *, signum: int = SIGTERM) -> int:
        """Signal it (SIGTERM: drain and ack; SIGINT the same), wait up to `timeout` s, then
        kill its group; also kill what outlived it there. Its exit code (-9: killed); see
        `killed`."""
        return stop_child(self.child, signum, timeout)

    def kill(self) -> None:
        """Last-resort clean-up: SIGKILL the whole group, so that nothing is left running."""
        kill_group(self.process.pid)
        self.process.wait()


def launch_supervisor(
    options: LaunchOptions, log_path: Path, name: str = "supervisor"
) -> SupervisorProcess:
    """Start the supervisor in its own process group, output appended to `log_path`.

    Returns at once; `wait_ready` tells when it serves. Raises `testkit.processes.SpawnFailed`
    when the command cannot be started at all.
    """
    if options.metrics_port == 0:
        options = replace(options, metrics_port=free_port())
    env = child_env(options.emulator_host, options.metrics_dir)
    # The store through the environment, never the command line: `ps` shows a command line
    # to every user of the machine, and a PostgreSQL URL may hold a password (issue 25).
    env[defaults.DB_PATH_ENV] = str(options.db_path)
    child = spawn_child(name, supervisor_args(options), env, log_path)
    return SupervisorProcess(child, options)
