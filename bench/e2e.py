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

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import e2e_report as report
from e2e_candidates import (
    NAIVE_FLAVORS,
    CandidateFailed,
    RunFigures,
    Testbed,
    run_miniscan,
    run_naive,
    run_raw,
)
from e2e_latency import measure_latency
from e2e_pubsub import Target, count_deliverable, create_target, delete_target, publish_backlog
from e2e_verdicts import verdicts

from broker.client import PubSubUnavailable
from contracts.defaults import DEFAULT_ACK_DEADLINE_S
from demo.emulator import EmulatorError, start_emulator
from scanner.workload import Workload, build_workload

REPO = Path(__file__).resolve().parents[1]
MODES = ("throughput", "latency", "memory", "all")
# The emulator's JIT is cold at first: measured here, raw moved 15,700 msgs/s on a fresh
# emulator and 40,000 after 100,000 messages had gone through it.
WARM_UP_MESSAGES = 100_000

Run = Callable[[Target, str], RunFigures]  # (subscription, database path) -> figures
Finished = tuple[Target, RunFigures, float]  # and when it finished (monotonic)


@dataclass
class Options:
    mode: str
    n: int
    keys: int
    naive_n: int
    workers: list[int]
    rates: list[float]
    duration_s: float
    memory_n: list[int]
    memory_workers: int | None
    seed: int
    repeat: int
    check_redelivery: bool
    workdir: Path
    record: Path | None
    emulator_host: str | None
    miniscan_args: list[str]

    @property
    def naive_keys(self) -> int:
        return max(1, self.keys * self.naive_n // self.n)

    def description(self) -> report.RunDescription:
        return report.RunDescription(
            self.n, self.keys, self.naive_n, self.naive_keys, self.repeat, self.duration_s,
            " ".join(self.miniscan_args),
        )  # fmt: skip


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
        and their long drains are steady)."""
        options, testbed = self.options, self.testbed
        backlog = build_workload(options.n, options.keys, options.seed)
        naive_backlog = backlog
        if options.naive_n != options.n:
            naive_backlog = build_workload(options.naive_n, options.naive_keys, options.seed)
        contenders: dict[str, Run] = {"raw": lambda t, db: run_raw(testbed, t, options.n)}
        for workers in options.workers:
            contenders[f"miniscan w{workers}"] = self.miniscan_run(backlog, workers)
        runs: dict[str, list[Finished]] = {name: [] for name in contenders}
        self.warm_up()
        for attempt in range(options.repeat):
            for name, run in contenders.items():
                runs[name].append(self.run_once(name, backlog, run, attempt))
            if attempt == 0:
                for flavor in NAIVE_FLAVORS:
                    run = partial(self.naive_run, naive_backlog, flavor)
                    runs[flavor] = [self.run_once(flavor, naive_backlog, run, attempt)]
        for name in ("raw", *NAIVE_FLAVORS, *contenders):
            if runs.get(name):
                self.results.throughput.append(self.summarize(runs.pop(name)))
        self.check_redelivery()

    def warm_up(self) -> None:
        messages = min(WARM_UP_MESSAGES, 10 * self.options.n)
        backlog = build_workload(messages, self.options.keys, 0)
        say(f"warming the emulator up with {messages:,} messages (not timed)")
        target = create_target("warmup")
        try:
            publish_backlog(target, backlog.payloads)
            run_raw(self.testbed, target, messages)
        finally:
            delete_target(target)

    def miniscan_run(self, backlog: Workload, workers: int, name: str | None = None) -> Run:
        name = name or f"miniscan w{workers}"

        def run(target: Target, db_path: str) -> RunFigures:
            return run_miniscan(
                self.testbed, target, len(backlog.payloads), db_path, backlog.expected,
                workers, name, self.options.miniscan_args,
            )  # fmt: skip

        return run

    def naive_run(self, backlog: Workload, flavor: str, target: Target, db_path: str):
        return run_naive(
            self.testbed, target, len(backlog.payloads), db_path, backlog.expected, flavor
        )

    def run_once(self, name: str, backlog: Workload, run: Run, attempt: int) -> Finished:
        """Publish the backlog to a fresh subscription and run the candidate on it."""
        target = create_target(name)
        db_path = str(self.options.workdir / f"{target.subscription}.db")
        started = time.monotonic()
        publish_backlog(target, backlog.payloads)
        say(f"{name}: published {len(backlog.payloads):,} messages in "
            f"{time.monotonic() - started:.1f}s; running (round {attempt + 1})")  # fmt: skip
        figures = run(target, db_path)
        say(f"{name}: {figures.rate:,.0f} msgs/s, rows wrong {figures.rows_wrong}")
        return target, figures, time.monotonic()

    def summarize(self, runs: list[Finished]) -> RunFigures:
        """The median run by rate stands for all; wrong rows are the worst of any run.

        A drain of 20,000 messages lasts about a second, so one run is at the mercy of
        whatever else the machine does in that second: the median of a few is steadier.
        """
        ordered = sorted((figures for _, figures, _ in runs), key=lambda f: f.rate)
        median = ordered[(len(ordered) - 1) // 2]
        median.all_rates = [figures.rate for _, figures, _ in runs]
        wrong = [figures.rows_wrong for _, figures, _ in runs if figures.rows_wrong is not None]
        median.rows_wrong = max(wrong) if wrong else None
        self._finished += [(target, median, finished) for target, _, finished in runs]
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
            self.results.memory.append(self.summarize([self.run_once(name, backlog, run, 0)]))
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


# --- command line --------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise ValueError(text)
    return values


def float_list(text: str) -> list[float]:
    values = [float(part) for part in text.split(",") if part.strip()]
    if not values or min(values) <= 0:
        raise ValueError(text)
    return values


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError(text)
    return value


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--mode", choices=MODES, default="all")
    add("--n", type=positive_int, help="backlog size (20000; quick 5000)")
    add("--keys", type=positive_int, help="distinct keys (n/4)")
    add("--naive-n", type=positive_int, help="backlog of the naive flavors (n; quick 2000)")
    add("--workers", type=int_list, help="miniscan --workers to run (1,2,4,8; quick 1,2)")
    add("--repeat", type=positive_int, help="runs of raw and miniscan, median shown (5; quick 1)")
    add("--rates", type=float_list, help="latency mode: msgs/s (500,2000)")
    add("--duration", type=positive_float, help="latency mode: seconds per rate (60; quick 10)")
    add("--memory-n", type=int_list, help="memory mode: backlogs (20000,200000; quick 5000,50000)")
    add("--memory-workers", type=positive_int, help="memory mode: --workers (the fastest)")
    add("--quick", action="store_true", help="the smaller defaults above")
    add("--seed", type=int, default=1)
    add("--skip-redelivery-check", action="store_true",
        help="do not wait out the ack deadline to count unacknowledged messages")  # fmt: skip
    add("--workdir", type=Path, help="folder for databases and logs (a new temporary one)")
    add("--record", type=Path, help="also add the figures to this RESULTS.md")
    add(
        "--miniscan-args",
        default="",
        metavar="FLAGS",
        help='more miniscan-supervisor flags for every miniscan run, e.g. "--batch-size 2000"',
    )
    add("--emulator-host", metavar="HOST:PORT",
        help="use this running emulator (its CPU is then not measured)")  # fmt: skip
    args = parser.parse_args(argv)
    quick = args.quick
    n = args.n or (5000 if quick else 20_000)
    return Options(
        mode=args.mode,
        n=n,
        keys=args.keys or max(1, n // 4),
        naive_n=args.naive_n or (min(n, 2000) if quick else n),
        workers=args.workers or ([1, 2] if quick else [1, 2, 4, 8]),
        rates=args.rates or [500.0, 2000.0],
        duration_s=args.duration or (10.0 if quick else 60.0),
        memory_n=args.memory_n or ([5000, 50_000] if quick else [20_000, 200_000]),
        memory_workers=args.memory_workers,
        seed=args.seed,
        repeat=args.repeat or (1 if quick else 5),
        check_redelivery=not args.skip_redelivery_check,
        workdir=args.workdir or Path(tempfile.mkdtemp(prefix="miniscan-e2e-")),
        record=args.record,
        emulator_host=args.emulator_host,
        miniscan_args=shlex.split(args.miniscan_args),
    )


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
    bench = Bench(options, Testbed(host, emulator.process.pid if emulator else None, workdir))
    try:
        run_modes(bench)
    except (CandidateFailed, PubSubUnavailable) as exc:
        print(f"e2e: error: {exc} (logs kept in {workdir})", file=sys.stderr)
        return 1
    finally:
        if emulator is not None:
            emulator.stop()
    header = report.machine_header(REPO, workdir, load_before)
    if owns_workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    block = report.render(bench.results, options.description(), header, verdicts(bench.results))
    print(block)
    if options.record:
        report.record_run(options.record, block)
        say(f"recorded in {options.record}")
    runs = [*bench.results.throughput, *bench.results.memory]
    return 1 if any(r.rows_wrong or r.redelivered or r.exit_code for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
