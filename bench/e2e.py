"""End-to-end benchmark: miniscan against a bare client loop and a naive processor.

One run starts the Pub/Sub emulator once; for each candidate it creates a fresh topic and
subscription, publishes the same backlog (default 20,000 messages over 5,000 keys, half v1 /
half v2, ~10% out of order, 2% duplicated), starts the candidate and times it from ready
until every message is acknowledged, then checks the table it wrote and, once the ack
deadline has passed, that Pub/Sub has nothing left to redeliver. Candidates:
  raw            unary pull(1000) + acknowledge, no decoding, no database: the ceiling;
  naive          streaming-pull callback: decode, one upsert + one commit per message (miniscan's
                 own store: WAL, synchronous=FULL), ack: the reference;
  naive-sqlite3  the same with the stdlib sqlite3 and its defaults (rollback journal);
  miniscan wN    the real `miniscan-supervisor --workers N`.
Modes: throughput (the above), latency (publish at fixed rates into a running miniscan with
default settings and report publish-to-commit percentiles), memory (miniscan on a small and
a 10x backlog: peak RSS must not grow with it). Progress goes to stderr; the figures are
printed last, as Markdown, and `--record bench/RESULTS.md` adds them to the results file.

Never: change miniscan's settings beyond what a flag says (latency mode uses the defaults),
or hide a wrong row: a wrong row, a redelivered message or a candidate that did not exit
cleanly makes the exit code 1. Missed
targets are reported, not failed: they depend on the machine (`e2e_verdicts`).

    .venv/bin/python bench/e2e.py [--mode all] [--n 20000] [--workers 1,2,4,8] [--quick]
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import e2e_report as report
import plots
from e2e_candidates import (
    NAIVE_FLAVORS,
    CandidateFailed,
    RunFigures,
    Testbed,
    drain_raw,
    run_miniscan,
    run_naive,
    run_raw,
)
from e2e_latency import measure_latency
from e2e_options import Options, parse_options
from e2e_pubsub import Target, count_deliverable, create_target, delete_target, publish_backlog
from e2e_verdicts import verdicts

from broker.client import PubSubUnavailable
from contracts.defaults import DEFAULT_ACK_DEADLINE_S
from scanner.workload import Workload, build_workload
from supervisor.cpu_busy import usable_cpus
from testkit.emulator import DESCRIPTIONS, EmulatorError, start_emulator

REPO = Path(__file__).resolve().parents[1]
# The emulator's JIT is cold at first: measured here, raw moved 15,700 msgs/s on a fresh
# emulator and 40,000 after 100,000 messages had gone through it.
WARM_UP_MESSAGES = 100_000
WARM_UP_MAX_CYCLES = 6
WARM_UP_QUIET = 0.05  # the JIT's share of the emulator's CPU in a warm-up cycle
# `raw-held` runs this many bare loops at once, each holding one pull: as many as pull in a
# miniscan tree under a backlog by default (one decoder per usable CPU), doing no work.
HELD_PULLERS = usable_cpus()

Run = Callable[[Testbed, Target, str], RunFigures]  # (where, subscription, database path)
Finished = tuple[Target, RunFigures, float]  # and when it finished (monotonic)


@dataclass
class Bench:
    options: Options
    testbed: Testbed
    results: report.Results = field(default_factory=report.Results)
    # (subscription, the figures that report it, when it finished): checked for leftovers
    _finished: list[Finished] = field(default_factory=list)

    # --- throughput ------------------------------------------------------------------------

    def run_throughput(self) -> None:
        """raw and every miniscan in rounds, so that a drift of the machine (the emulator's
        JIT warming up, a neighbour's load) spreads over all of them instead of favouring
        whoever runs last; the naive flavors once, after the first round (they are slow,
        and their long drains are steady). Before the timed rounds, the emulator is warmed
        up (`warm_up`) and every candidate runs once untimed: after a warm-up with bare
        loops alone, the first miniscan run of a session drained at about half the speed
        of the next ones (22,875 against 40,472 and 41,912 msgs/s), the emulator meeting
        its pattern for the first time. An untimed run still counts for wrong rows and
        leftovers."""
        options = self.options
        backlog = build_workload(options.n, options.keys, options.seed)
        naive_backlog = backlog
        if options.naive_n != options.n:
            naive_backlog = build_workload(options.naive_n, options.naive_keys, options.seed)
        contenders: dict[str, Run] = {
            "raw": lambda bed, t, db: run_raw(bed, t, options.n),
            "raw-held": lambda bed, t, db: run_raw(
                bed, t, options.n, hold_pulls=1, processes=HELD_PULLERS
            ),
        }
        for workers in options.workers:
            contenders[f"miniscan w{workers}"] = self.miniscan_run(backlog, workers)
        runs: dict[str, list[Finished]] = {name: [] for name in contenders}
        self.warm_up()
        untimed = {
            name: self.run_once(name, backlog, run, -1, sample_pss=True)
            for name, run in contenders.items()
        }
        for attempt in range(options.repeat):
            for name, run in contenders.items():
                runs[name].append(self.run_once(name, backlog, run, attempt, sample_pss=False))
            if attempt == 0 and not options.skip_naive:
                for flavor in NAIVE_FLAVORS:
                    run = partial(self.naive_run, naive_backlog, flavor)
                    runs[flavor] = [
                        self.run_once(flavor, naive_backlog, run, attempt, sample_pss=True)
                    ]
        for name in ("raw", "raw-held", *NAIVE_FLAVORS, *contenders):
            if runs.get(name):
                self.results.throughput.append(self.summarize(runs.pop(name), untimed.get(name)))
        self.check_redelivery()

    def warm_up(self) -> None:
        """Drain backlogs untimed until the emulator's JIT is quiet, at most
        WARM_UP_MAX_CYCLES times. A cycle drains one with the bare loop, one with a held
        loop and one with `raw-held` (HELD_PULLERS held loops at once): the emulator's paths
        for a pull with nothing leased (which `raw` takes), and with messages leased by one
        consumer or by several (which every ack-after-commit consumer takes). Quiet: its
        JIT compiler threads used at most WARM_UP_QUIET of its CPU in the last cycle.
        Measured (RESULTS "fifth pass"): after the old warm-up (one bare and one held drain)
        the JIT still spent 5-19 us a message during timed rounds, the bare loop's too;
        after five cycles, 0-3. With an emulator someone else started its threads cannot be
        read, and one cycle runs."""
        messages = min(WARM_UP_MESSAGES, 10 * self.options.n) // 2
        for cycle in range(1, WARM_UP_MAX_CYCLES + 1):
            cpu, jit = self.testbed.emulator_cpu()
            for hold_pulls, processes in ((0, 1), (1, 1), (1, HELD_PULLERS)):
                backlog = build_workload(messages, self.options.keys, cycle * 3 + hold_pulls)
                drain_raw(self.testbed, backlog.payloads, hold_pulls, processes)
            cpu_after, jit_after = self.testbed.emulator_cpu()
            cpu, jit = cpu_after - cpu, jit_after - jit
            if math.isnan(jit):
                say(f"warmed the emulator up with 3 x {messages:,} messages (not timed)")
                return
            say(f"warm-up {cycle}: 3 x {messages:,} messages (not timed), the emulator's JIT "
                f"used {jit:.2f} s of its {cpu:.2f} s CPU")  # fmt: skip
            if jit <= WARM_UP_QUIET * cpu:
                return
        say(f"the emulator's JIT was still busy after {WARM_UP_MAX_CYCLES} warm-up cycles: "
            "its share is in each run's CPU column")  # fmt: skip

    def miniscan_run(self, backlog: Workload, workers: int, name: str | None = None) -> Run:
        name = name or f"miniscan w{workers}"

        def run(testbed: Testbed, target: Target, db_path: str) -> RunFigures:
            return run_miniscan(
                testbed, target, len(backlog.payloads), db_path, backlog.expected,
                workers, name, self.options.miniscan_args,
            )  # fmt: skip

        return run

    def naive_run(
        self, backlog: Workload, flavor: str, testbed: Testbed, target: Target, db_path: str
    ) -> RunFigures:
        return run_naive(testbed, target, len(backlog.payloads), db_path, backlog.expected, flavor)

    def run_once(
        self, name: str, backlog: Workload, run: Run, attempt: int, sample_pss: bool
    ) -> Finished:
        """Publish the backlog to a fresh subscription and run the candidate on it.
        `sample_pss` False for the timed rounds of a candidate that also ran untimed: its
        tree's PSS is then sampled in the untimed run only, where reading every process's
        smaps_rollup ten times a second (up to 11 ms each time for `--workers 8`, on the
        same two CPUs) costs no timed run anything, and costs more the more processes a
        candidate has."""
        target = create_target(name)
        db_path = str(self.options.workdir / f"{target.subscription}.db")
        started = time.monotonic()
        publish_backlog(target, backlog.payloads)
        which = f"round {attempt + 1}" if attempt >= 0 else "untimed"
        say(f"{name}: published {len(backlog.payloads):,} messages in "
            f"{time.monotonic() - started:.1f}s; running ({which})")  # fmt: skip
        figures = run(replace(self.testbed, sample_pss=sample_pss), target, db_path)
        say(f"{name}: {figures.rate:,.0f} msgs/s, rows wrong {figures.rows_wrong}")
        return target, figures, time.monotonic()

    def summarize(self, runs: list[Finished], untimed: Finished | None = None) -> RunFigures:
        """The median run by rate stands for all; wrong rows are the worst of any run, the
        untimed one's included (and its leftovers are counted with the others), and so are
        the memory peaks (the timed runs do not sample PSS: `run_once`).

        A drain of 20,000 messages lasts about a second, so one run is at the mercy of
        whatever else the machine does in that second: the median of a few is steadier.
        """
        ordered = sorted((figures for _, figures, _ in runs), key=lambda f: f.rate)
        median = ordered[(len(ordered) - 1) // 2]
        median.all_rates = [figures.rate for _, figures, _ in runs]
        every = [*runs, untimed] if untimed else runs
        wrong = [figures.rows_wrong for _, figures, _ in every if figures.rows_wrong is not None]
        median.rows_wrong = max(wrong) if wrong else None
        every_figures = [figures for _, figures, _ in every]
        median.peak_tree_pss_kib = max(figures.peak_tree_pss_kib for figures in every_figures)
        median.peak_tree_rss_kib = max(figures.peak_tree_rss_kib for figures in every_figures)
        self._finished += [(target, median, finished) for target, _, finished in every]
        return median

    def check_redelivery(self) -> None:
        """Once each candidate's ack deadline ran out, nothing it failed to ack is still
        leased: whatever its subscription hands out now was never acknowledged."""
        for target, figures, finished_at in self._finished:
            if self.options.check_redelivery:
                wait = finished_at + DEFAULT_ACK_DEADLINE_S + 2 - time.monotonic()
                if wait > 0:
                    say(f"waiting {wait:.0f}s for the ack deadline before counting leftovers")
                    time.sleep(wait)
                figures.redelivered = (figures.redelivered or 0) + count_deliverable(target)
            delete_target(target)
        self._finished.clear()

    # --- latency and memory ----------------------------------------------------------------

    def run_latency(self) -> None:
        for rate in self.options.rates:
            target = create_target(f"latency-{rate:.0f}")
            db_path = str(self.options.workdir / f"{target.subscription}.db")
            say(f"latency: {rate:,.0f}/s for {self.options.duration_s:.0f}s into miniscan")
            try:
                result = measure_latency(
                    self.testbed, target, rate, self.options.duration_s, db_path,
                    self.options.miniscan_args,
                )  # fmt: skip
            finally:
                delete_target(target)
            say(f"latency: {rate:,.0f}/s: p99 {result.db_percentiles[0.99] * 1000:.0f} ms")
            self.results.latency.append(result)

    def run_memory(self) -> None:
        workers = self.options.memory_workers or self.best_workers()
        for messages in self.options.memory_n:
            backlog = build_workload(messages, self.options.keys, self.options.seed)
            name = f"miniscan w{workers} {messages:,}"
            run = self.miniscan_run(backlog, workers, name)
            finished = self.run_once(name, backlog, run, 0, sample_pss=True)
            self.results.memory.append(self.summarize([finished]))
        self.check_redelivery()

    def best_workers(self) -> int:
        """The --workers of the fastest miniscan run, or miniscan's default (CPU count)."""
        miniscan = [r for r in self.results.throughput if r.candidate.startswith("miniscan")]
        if not miniscan:
            return os.cpu_count() or 1
        best = max(miniscan, key=lambda r: r.rate)
        return int(best.candidate.removeprefix("miniscan w"))


def say(message: str) -> None:
    print(f"e2e: {message}", file=sys.stderr, flush=True)


def record_plots(results: report.Results, header: str, server: str, results_path: Path) -> None:
    """Update plots/figures.json beside the results file and redraw its PNGs; without
    matplotlib (the `bench` extra) the run stays recorded and the pictures are skipped."""
    run = header.splitlines()[0].removeprefix("- date: ")
    try:
        written = plots.record(plots.figures_of(results, run, server), results_path)
    except ImportError as exc:
        say(f"plots skipped ({exc}): pip install -e '.[bench]'")
        return
    say("plots: " + ", ".join(str(path) for path in written))


def run_modes(bench: Bench) -> None:
    mode = bench.options.mode
    if mode in ("throughput", "all"):
        bench.run_throughput()
    if mode in ("latency", "all"):
        bench.run_latency()
    if mode in ("memory", "all"):
        bench.run_memory()


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    workdir = options.workdir
    owns_workdir = not workdir.exists() or not any(workdir.iterdir())
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    emulator = None
    if options.emulator_host is None:
        try:
            emulator = start_emulator(log_dir=str(workdir))
        except EmulatorError as exc:
            print(f"e2e: error: {exc}", file=sys.stderr)
            return 2
    host = emulator.host if emulator else options.emulator_host
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    # Figures on one Pub/Sub server must never be mistaken for the other's (issue 16).
    server = DESCRIPTIONS[emulator.kind] if emulator else f"one already running at {host}"
    say(f"Pub/Sub server: {server}")
    bench = Bench(options, Testbed(host, emulator.process.pid if emulator else None, workdir))
    try:
        run_modes(bench)
    except (CandidateFailed, PubSubUnavailable) as exc:
        print(f"e2e: error: {exc} (logs kept in {workdir})", file=sys.stderr)
        return 1
    finally:
        if emulator is not None:
            emulator.stop()
    header = report.machine_header(REPO, workdir, load_before) + f"\n- Pub/Sub server: {server}"
    if owns_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    block = report.render(bench.results, options.description(), header, verdicts(bench.results))
    print(block)
    if options.record:
        report.record_run(options.record, block)
        say(f"recorded in {options.record}")
        record_plots(bench.results, header, server, options.record)
    runs = [*bench.results.throughput, *bench.results.memory]
    return 1 if any(r.rows_wrong or r.redelivered or r.exit_code for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
