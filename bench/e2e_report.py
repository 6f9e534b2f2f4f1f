"""The end-to-end benchmark's output: the machine it ran on and its figures, as Markdown.

Owns: describing the machine (date, nproc, CPU model, RAM, load, git commit, the work
folder's filesystem), the throughput, latency and memory tables, and recording a finished
run into bench/RESULTS.md under the end-to-end section.

Never: measure anything or decide pass/fail thresholds; it formats what it is given. Tables
are Markdown so that the printed figures are pasted into RESULTS.md unchanged.
"""

from __future__ import annotations

import datetime
import importlib.util
import math
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from e2e_candidates import RunFigures
from e2e_latency import POLL_INTERVAL_S, LatencyFigures

SECTION = "## End-to-end throughput, latency and memory (`bench/e2e.py`)"
MIB = 1024
MEASURED_CODE = ("bench", "supervisor", "workers", "store", "scanner", "pyproject.toml")


@dataclass
class Results:
    throughput: list[RunFigures] = field(default_factory=list)
    latency: list[LatencyFigures] = field(default_factory=list)
    memory: list[RunFigures] = field(default_factory=list)


@dataclass(frozen=True)
class RunDescription:
    """What the run was asked to do, for the sentences above each table."""

    n: int
    keys: int
    naive_n: int
    naive_keys: int
    repeat: int
    duration_s: float
    miniscan_args: str  # flags added to every miniscan run ('' = none)


def _first_line_with(path: str, prefix: str) -> str:
    try:
        with open(path) as source:
            for line in source:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def git_commit(repo: Path) -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
            timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
        # Only changes to code that runs in the benchmark make the figures differ from what
        # the commit would give; others' work in progress on tests or docs does not.
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", *MEASURED_CODE],
            cwd=repo, capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
        dirty = [line[3:] for line in status.splitlines()]
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (f" (uncommitted changes in {', '.join(dirty)})" if dirty else "")


def miniscan_source() -> str:
    """Where the candidates import miniscan from (they inherit PYTHONPATH): the repo's
    working tree through the editable install, or a checkout put first on PYTHONPATH."""
    spec = importlib.util.find_spec("supervisor")
    if spec is None or not spec.submodule_search_locations:
        return "?"
    return str(Path(next(iter(spec.submodule_search_locations))).parent)


def filesystem_of(path: Path) -> str:
    """The filesystem type holding `path` (tmpfs would make fsync free and flatter naive)."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                _, mount_point, fs_type, *_ = line.split()
                inside = str(path.resolve()).startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) > len(best):
                    best, kind = mount_point, fs_type
    except OSError:
        pass
    return kind


def machine_header(repo: Path, workdir: Path, load_before: tuple[float, ...]) -> str:
    memory_kib = _first_line_with("/proc/meminfo", "MemTotal").split()[0]
    load_after = os.getloadavg()
    return "\n".join([
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} CPUs ({_first_line_with('/proc/cpuinfo', 'model name')}),"
        f" {int(memory_kib) / MIB / MIB:.1f} GiB RAM, Python {platform.python_version()}",
        f"- commit: {git_commit(repo)}; miniscan imported from {miniscan_source()}",
        f"- databases on {filesystem_of(workdir)}; emulator on the same machine",
        f"- load average (1/5/15 min) before: {_load(load_before)}, after: {_load(load_after)}",
    ])  # fmt: skip


def _load(load: Sequence[float]) -> str:
    return " / ".join(f"{value:.2f}" for value in load)


def _mib(kib: int) -> str:
    return f"{kib / MIB:.0f}"


def _seconds(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _ratio(rate: float, reference: float | None) -> str:
    return f"{rate / reference:.2f}x" if reference else "-"


def emulator_seconds(run: RunFigures) -> str:
    """The emulator's CPU while the candidate drained, and what of it went to compiling its
    own code (a JIT still busy means the emulator was not warm: every figure of that run
    pays for it, the reference's too)."""
    if math.isnan(run.emulator_jit_s):
        return _seconds(run.emulator_cpu_s)
    return f"{_seconds(run.emulator_cpu_s)} (JIT {run.emulator_jit_s:.2f})"


def throughput_table(runs: Sequence[RunFigures]) -> str:
    raw = next((r.rate for r in runs if r.candidate == "raw"), None)
    held = next((r.rate for r in runs if r.candidate == "raw-held"), None)
    naive = next((r.rate for r in runs if r.candidate == "naive"), None)
    lines = [
        "| candidate | messages | msgs/s | vs raw | vs raw-held | vs naive | peak RSS tree MiB "
        "| peak RSS max process MiB | CPU s (candidate / emulator, of which its JIT) | start s "
        "| rows wrong | redelivered | peak PSS tree MiB | first row s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run in runs:
        biggest = max((p.peak_rss_kib for p in run.processes), default=0)
        wrong = "n/a" if run.rows_wrong is None else str(run.rows_wrong)
        redelivered = "-" if run.redelivered is None else str(run.redelivered)
        lines.append(
            f"| {run.candidate} | {run.messages:,} | {run.rate:,.0f} | {_ratio(run.rate, raw)} "
            f"| {_ratio(run.rate, held)} | {_ratio(run.rate, naive)} "
            f"| {_mib(run.peak_tree_rss_kib)} | {_mib(biggest)} "
            f"| {_seconds(run.cpu_s)} / {emulator_seconds(run)} | {run.start_s:.1f} "
            f"| {wrong} "
            f"| {redelivered} | {_mib(run.peak_tree_pss_kib)} | {_seconds(run.first_row_s, 2)} |"
        )
    return "\n".join(lines)


def process_lines(runs: Sequence[RunFigures]) -> str:
    """Per process of each tree: peak RSS and CPU seconds while draining."""
    lines = []
    for run in runs:
        parts = [
            f"{p.name} {_mib(p.peak_rss_kib)} MiB/{p.cpu_s:.1f}s"
            for p in sorted(run.processes, key=lambda p: p.name)
        ]
        rates = ""
        if len(run.all_rates) > 1:
            rates = " (msgs/s of each run: " + ", ".join(f"{r:,.0f}" for r in run.all_rates) + ")"
        lines.append(f"- {run.candidate}: " + ", ".join(parts) + rates)
    return "\n".join(lines)


def latency_table(results: Sequence[LatencyFigures]) -> str:
    lines = [
        "| rate asked | achieved | messages | seen | db p50 / p95 / p99 ms "
        "| histogram p50 / p95 / p99 ms | peak RSS tree MiB |",
        "|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for result in results:
        db = " / ".join(f"{v * 1000:.0f}" for v in result.db_percentiles.values())
        hist = " / ".join(f"{v * 1000:.0f}" for v in result.histogram_percentiles.values())
        lines.append(
            f"| {result.rate:,.0f}/s | {result.achieved_rate:,.0f}/s | {result.messages:,} "
            f"| {result.seen:,} | {db} | {hist} | {_mib(result.peak_tree_rss_kib)} |"
        )
    return "\n".join(lines)


def memory_table(runs: Sequence[RunFigures]) -> str:
    names = sorted({p.name for run in runs for p in run.processes})
    lines = [
        "| backlog | msgs/s | peak RSS tree MiB | peak PSS tree MiB | " + " | ".join(names) + " |",
        "|--:|--:|--:|--:|" + "--:|" * len(names),
    ]
    for run in runs:
        by_name = {p.name: p.peak_rss_kib for p in run.processes}
        cells = " | ".join(_mib(by_name[n]) if n in by_name else "-" for n in names)
        lines.append(
            f"| {run.messages:,} | {run.rate:,.0f} | {_mib(run.peak_tree_rss_kib)} "
            f"| {_mib(run.peak_tree_pss_kib)} | {cells} |"
        )
    return "\n".join(lines)


def record_run(results_path: Path, block: str) -> None:
    """Add a run at the end of the end-to-end section (created if missing), so that the
    sections other benchmarks keep in the same file stay where they are."""
    text = results_path.read_text() if results_path.exists() else "# Benchmark results\n"
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n"
    start = text.index(SECTION) + len(SECTION)
    following = text.find("\n## ", start)
    end = len(text) if following < 0 else following + 1
    section = text[:end].rstrip("\n") + "\n\n" + block.strip("\n") + "\n"
    results_path.write_text(section + ("\n" + text[end:] if following >= 0 else ""))


def render(results: Results, described: RunDescription, header: str, verdicts: list[str]) -> str:
    """The whole printed report: machine, one table per mode that ran, then the verdicts."""
    date = header.splitlines()[0].removeprefix("- date: ")
    parts = [f"### Run of {date}", "", header]
    if described.miniscan_args:
        parts.append(f"- every miniscan ran with `{described.miniscan_args}`")
    parts.append("")
    if results.throughput:
        parts += [
            f"Throughput: backlog of {described.n:,} messages over {described.keys:,} keys "
            f"(naive flavors: {described.naive_n:,} over {described.naive_keys:,} keys). "
            "msgs/s from ready to every message acknowledged, median of "
            f"{described.repeat} run(s) for raw and miniscan (all runs: see below), after the "
            "emulator was warmed up and each ran once untimed; raw-held = one bare loop per "
            "CPU, each holding a pull while pulling the next; CPU over "
            "the same interval; redelivered = handed out again after the ack deadline; PSS = "
            "summed from /proc/<pid>/smaps_rollup (a page shared by n processes counts 1/n in "
            "each); first row = from spawning the supervisor to the first acknowledged message.",
            "",
            throughput_table(results.throughput),
            "",
            "Per process (peak RSS / CPU while draining); all runs' msgs/s:",
            "",
            process_lines(results.throughput),
            "",
        ]
    if results.latency:
        parts += [
            "Latency: miniscan with default settings"
            f"{' plus the flags above' if described.miniscan_args else ''}, paced publishing for "
            f"{described.duration_s:.0f}s per rate. db = from the publish() call to the row "
            f"seen by a reader polling every {POLL_INTERVAL_S * 1000:.0f} ms, published with the "
            "client library's default batching (10 ms); histogram = "
            "miniscan_end_to_end_latency_seconds (Pub/Sub publish time to commit), "
            "interpolated within its buckets like histogram_quantile.",
            "",
            latency_table(results.latency),
            "",
        ]
    if results.memory:
        parts += [
            f"Memory: peak RSS (MiB) per process and the tree's peak RSS and PSS, the same "
            f"{described.keys:,} keys for every backlog.",
            "",
            memory_table(results.memory),
            "",
            "Per process (peak RSS / CPU while draining):",
            "",
            process_lines(results.memory),
            "",
        ]
    return "\n".join([*parts, "Targets:", "", *verdicts, ""])
