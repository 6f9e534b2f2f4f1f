"""Run one candidate against a subscription that holds a backlog, and time it.

Owns: starting each candidate as its own process tree (`raw` and `naive` are the scripts
next to this file, `miniscan` is the real `miniscan-supervisor` command, started and stopped
by `testkit.launch` as the demo and the tests start it), knowing when it is ready and when it
is done, sampling its memory and CPU (and the emulator's CPU) meanwhile, stopping it, and
reading the table it wrote back to count wrong rows.

When the clock runs, for every candidate: from *ready* (the candidate's Pub/Sub channel is
connected and its subscription answered; for miniscan, /readyz says the writer has the
database open and a decoder is pulling) to *done* (every message acknowledged). raw and
naive report both times themselves on stdout. miniscan is polled from outside: /readyz every
20 ms, then `miniscan_messages_acked_total` on /metrics (counted after each acknowledge call
returned), at an interval that shrinks as the end nears, so `done` is at most one poll
late: that error counts against miniscan. Start-up (imports, spawning) is outside the
clock, and reported separately as `start_s`.

Never: publish, create subscriptions or decide what the figures mean (`e2e.py` does).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from e2e_procs import (
    ProcessFigures,
    TreeSampler,
    cpu_between,
    read_cpu_s,
    read_jit_cpu_s,
    tree_pids,
)
from e2e_pubsub import Target, create_target, delete_target, publish_backlog

from scanner.workload import Key, Row, rows_wrong
from testkit.launch import LaunchOptions, SupervisorProcess, child_env, launch_supervisor
from testkit.table import read_table

BENCH_DIR = Path(__file__).resolve().parent
ACKED = "miniscan_messages_acked_total"
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0
# candidate name -> e2e_naive.py --store; `naive` (miniscan's own store) is the reference
NAIVE_FLAVORS = {"naive": "scanstore", "naive-sqlite3": "sqlite3"}


@dataclass(frozen=True)
class Testbed:
    """Where candidates run: the emulator (its pid None when someone else started it, and
    then its CPU is not measured) and a folder for databases, logs and metrics files.
    `sample_pss` False: candidates' trees are sampled without PSS (see `TreeSampler`)."""

    emulator_host: str
    emulator_pid: int | None
    workdir: Path
    sample_pss: bool = True

    def env(self) -> dict[str, str]:
        return child_env(self.emulator_host)

    def emulator_cpu(self) -> tuple[float, float]:
        """CPU seconds the emulator's processes used so far, and what of it went to
        compiling the emulator itself (Google's is a JVM); NaN for an emulator not ours."""
        if self.emulator_pid is None:
            return math.nan, math.nan
        pids = tree_pids(self.emulator_pid)
        return (
            sum(cpu for pid in pids if (cpu := read_cpu_s(pid))),
            sum(read_jit_cpu_s(pid) for pid in pids),
        )


@dataclass
class RunFigures:
    """What one candidate did with one backlog."""

    candidate: str
    messages: int
    start_s: float  # spawn -> ready
    drain_s: float  # ready -> every message acknowledged
    processes: list[ProcessFigures]
    peak_tree_rss_kib: int
    cpu_s: float  # the candidate's tree, ready -> done
    emulator_cpu_s: float  # ready -> done
    rows_wrong: int | None  # None: the candidate keeps no table
    exit_code: int | None
    redelivered: int | None = None  # filled in later by the caller
    all_rates: list[float] = field(default_factory=list)  # of every repeat, when repeated
    peak_tree_pss_kib: int = 0  # shared pages counted once
    first_row_s: float = math.nan  # spawn -> the first message acknowledged (miniscan)
    emulator_jit_s: float = math.nan  # of emulator_cpu_s: its JIT compiling, ready -> done

    @property
    def rate(self) -> float:
        return self.messages / self.drain_s if self.drain_s > 0 else 0.0


class CandidateFailed(RuntimeError):
    """The candidate did not get ready, or did not finish in time."""


class Measurement:
    """Samples one candidate's tree from spawn to exit; CPU is counted from ready to done."""

    def __init__(self, name: str, process: subprocess.Popen, testbed: Testbed) -> None:
        self.name = name
        self.testbed = testbed
        self.sampler = TreeSampler(process.pid, pss=testbed.sample_pss).start()
        self.spawned_at = time.time()
        # (when, the tree's CPU by pid, the emulator's CPU, its JIT's CPU)
        self._ready: tuple[float, dict[int, float], float, float] | None = None
        self._done: tuple[float, dict[int, float], float, float] | None = None

    def mark_ready(self, at: float) -> None:
        self._ready = (at, self.sampler.cpu_snapshot(), *self.testbed.emulator_cpu())

    def mark_done(self, at: float) -> None:
        self._done = (at, self.sampler.cpu_snapshot(), *self.testbed.emulator_cpu())

    def figures(self, messages: int, rows: int | None, exit_code: int | None) -> RunFigures:
        self.sampler.stop()
        if self._ready is None or self._done is None:
            raise RuntimeError("mark_ready and mark_done first")
        ready_at, ready_cpu, ready_emulator, ready_jit = self._ready
        done_at, done_cpu, done_emulator, done_jit = self._done
        processes = self.sampler.figures()
        for process in processes:  # CPU of the measured interval, not of the whole life
            process.cpu_s = done_cpu.get(process.pid, 0.0) - ready_cpu.get(process.pid, 0.0)
        return RunFigures(
            candidate=self.name,
            messages=messages,
            start_s=ready_at - self.spawned_at,
            drain_s=done_at - ready_at,
            processes=processes,
            peak_tree_rss_kib=self.sampler.peak_tree_rss_kib,
            cpu_s=cpu_between(ready_cpu, done_cpu),
            emulator_cpu_s=done_emulator - ready_emulator,
            rows_wrong=rows,
            exit_code=exit_code,
            peak_tree_pss_kib=self.sampler.peak_tree_pss_kib,
            emulator_jit_s=done_jit - ready_jit,
        )


def drain_timeout(messages: int) -> float:
    """Generous: a candidate slower than 50 messages/s is broken, not slow."""
    return 60.0 + messages / 50


# --- raw and naive: scripts that report on stdout --------------------------------------------


class StdoutReports:
    """Collects the `<word> <rest>` lines a script candidate prints, as they arrive."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: dict[str, str] = {}
        self._arrived = threading.Condition()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            word, _, rest = line.strip().partition(" ")
            with self._arrived:
                self.lines[word] = rest
                self._arrived.notify_all()

    def wait_for(self, word: str, timeout: float) -> float | None:
        """The unix time reported with `word`, or None if it did not come in time."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: word in self.lines, timeout):
                return None
            return float(self.lines[word].split()[0])


def run_script(
    testbed: Testbed, name: str, script: str, target: Target, messages: int, *extra: str
) -> tuple[Measurement, int]:
    """Run a script candidate until it reports `done`; its measurement and exit code."""
    args = [sys.executable, str(BENCH_DIR / script), "--project", target.project,
            "--subscription", target.subscription, "--count", str(messages), *extra]  # fmt: skip
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, text=True, env=testbed.env(), cwd=BENCH_DIR.parent
    )
    measurement = Measurement(name, process, testbed)
    measurement.sampler.names[process.pid] = name
    reports = StdoutReports(process)
    try:
        ready_at = reports.wait_for("ready", READY_TIMEOUT_S)
        if ready_at is None:
            raise CandidateFailed(f"{name} did not get ready in {READY_TIMEOUT_S:.0f}s")
        measurement.mark_ready(ready_at)
        done_at = reports.wait_for("done", drain_timeout(messages))
        if done_at is None:
            raise CandidateFailed(f"{name} did not finish {messages:,} messages in time")
        measurement.mark_done(done_at)
        return measurement, wait_exit(process, name)
    finally:
        kill_tree(process)


def run_raw(
    testbed: Testbed, target: Target, messages: int, hold_pulls: int = 0, processes: int = 1
) -> RunFigures:
    """`raw` (hold_pulls 0) or `raw-held` (1), in `processes` processes at once: e2e_raw.py."""
    name = "raw" if hold_pulls == 0 else "raw-held"
    measurement, code = run_script(
        testbed, name, "e2e_raw.py", target, messages,
        "--hold-pulls", str(hold_pulls), "--processes", str(processes),
    )  # fmt: skip
    return measurement.figures(messages, None, code)


def drain_raw(
    testbed: Testbed, payloads: Sequence[bytes], hold_pulls: int = 0, processes: int = 1
) -> RunFigures:
    """`run_raw` on a fresh subscription holding `payloads`, deleted afterwards."""
    target = create_target("raw" if hold_pulls == 0 else f"hold-{hold_pulls}")
    try:
        publish_backlog(target, payloads)
        return run_raw(testbed, target, len(payloads), hold_pulls, processes)
    finally:
        delete_target(target)


def run_naive(
    testbed: Testbed, target: Target, messages: int, db_path: str,
    expected: Mapping[Key, Row], flavor: str = "naive",
) -> RunFigures:  # fmt: skip
    measurement, code = run_script(
        testbed, flavor, "e2e_naive.py", target, messages,
        "--db", db_path, "--store", NAIVE_FLAVORS[flavor],
    )  # fmt: skip
    return measurement.figures(messages, rows_wrong(expected, read_table(db_path)), code)


# --- miniscan: the real command, watched through its HTTP endpoints ---------------------------


def wait_acked(
    miniscan: SupervisorProcess, messages: int, timeout: float, first: list[float] | None = None
) -> float | None:
    """Poll the acked counter until it reaches `messages`; the time it was first seen there.
    `first`, if given, receives the time the first acknowledged message was seen.

    Polls every 20 ms until the first ack, then every 200 ms while far from the end, then
    faster (down to 20 ms) as the remaining messages shrink at the observed rate: each
    scrape costs the supervisor a little CPU.
    """
    deadline = time.monotonic() + timeout
    last_count, last_at = 0.0, time.monotonic()
    while time.monotonic() < deadline:
        count = miniscan.metrics(only=(ACKED,)).get(ACKED, 0.0)
        now = time.monotonic()
        if count > 0 and first is not None and not first:
            first.append(time.time())
        if count >= messages:
            return time.time()
        if first is not None and not first:
            time.sleep(0.02)
            continue
        rate = (count - last_count) / max(now - last_at, 1e-3)
        last_count, last_at = count, now
        remaining_s = (messages - count) / rate if rate > 0 else 1.0
        time.sleep(min(0.2, max(0.02, remaining_s / 4)))
    return None


def start_miniscan(
    testbed: Testbed, target: Target, db_path: str, workers: int | None, *extra: str
) -> SupervisorProcess:
    """`miniscan-supervisor` on `target`: `workers` None means its default (CPU count)."""
    settings = LaunchOptions(
        testbed.emulator_host,
        db_path,
        project=target.project,
        subscription=target.subscription,
        workers=workers,
        # Ours, so that each run starts from an empty one and nothing is left behind in /tmp.
        metrics_dir=str(testbed.workdir / f"metrics-{target.subscription}"),
        extra_args=extra,
    )
    return launch_supervisor(settings, testbed.workdir / f"supervisor-{target.subscription}.log")


def wait_ready(miniscan: SupervisorProcess, name: str) -> float:
    """Poll /readyz every 20 ms; the time it first said yes."""
    if not miniscan.wait_ready(READY_TIMEOUT_S, every=0.02):
        raise CandidateFailed(f"{name} did not get ready: see {miniscan.log_path}")
    return time.time()


def child_names(miniscan: SupervisorProcess) -> dict[int, str]:
    """pid -> name of the supervisor and every child it spawned."""
    return {**{pid: name for name, pid in miniscan.spawned()}, miniscan.process.pid: "supervisor"}


def stop_miniscan(miniscan: SupervisorProcess, name: str) -> int:
    """Graceful stop (SIGTERM); its exit code. CandidateFailed if it had to be killed."""
    code = miniscan.stop(STOP_TIMEOUT_S)
    if miniscan.killed:
        raise CandidateFailed(
            f"{name} (log: {miniscan.log_path}) did not stop within {STOP_TIMEOUT_S:.0f}s"
        )
    return code


def run_miniscan(
    testbed: Testbed, target: Target, messages: int, db_path: str,
    expected: Mapping[Key, Row], workers: int, name: str, extra: Sequence[str] = (),
) -> RunFigures:  # fmt: skip
    """`extra`: more miniscan-supervisor flags, e.g. ("--max-in-flight", "1000")."""
    miniscan = start_miniscan(testbed, target, db_path, workers, *extra)
    measurement = Measurement(name, miniscan.process, testbed)
    try:
        measurement.mark_ready(wait_ready(miniscan, name))
        first: list[float] = []
        done_at = wait_acked(miniscan, messages, drain_timeout(messages), first)
        if done_at is None:
            raise CandidateFailed(
                f"{name} did not ack {messages:,} messages: see {miniscan.log_path}"
            )
        measurement.mark_done(done_at)
        measurement.sampler.names.update(child_names(miniscan))
        code = stop_miniscan(miniscan, name)
    finally:
        miniscan.kill()
    figures = measurement.figures(messages, rows_wrong(expected, read_table(db_path)), code)
    figures.first_row_s = first[0] - measurement.spawned_at if first else math.nan
    return figures


def wait_exit(process: subprocess.Popen, name: str) -> int:
    """The exit code once the candidate stopped by itself; CandidateFailed if it hangs."""
    try:
        return process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CandidateFailed(f"{name} did not exit within {STOP_TIMEOUT_S:.0f}s") from None


def kill_tree(process: subprocess.Popen) -> None:
    """Clean-up after a failure: the candidate's whole tree, by pid, never by name."""
    if process.poll() is not None:
        return
    for pid in reversed(tree_pids(process.pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    process.wait()
