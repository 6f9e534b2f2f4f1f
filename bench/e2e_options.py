"""The end-to-end benchmark's options: what one run is asked to do, from its command line.

Owns: `Options` and `parse_options` (the flags of `bench/e2e.py`, their defaults and the
smaller `--quick` ones), refusing a bad value in one line (argparse's exit code 2).

Never: run anything; `e2e.py` does.
"""

from __future__ import annotations

import argparse
import shlex
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import e2e_report as report

MODES = ("throughput", "latency", "memory", "all")
DESCRIPTION = "End-to-end benchmark: miniscan against a bare client loop and a naive processor."


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
    skip_naive: bool = False

    @property
    def naive_keys(self) -> int:
        return max(1, self.keys * self.naive_n // self.n)

    def description(self) -> report.RunDescription:
        return report.RunDescription(
            self.n, self.keys, self.naive_n, self.naive_keys, self.repeat, self.duration_s,
            " ".join(self.miniscan_args),
        )  # fmt: skip


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
    parser = argparse.ArgumentParser(description=DESCRIPTION)
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
    add("--skip-naive", action="store_true",
        help="throughput mode: raw and miniscan only (the naive flavors take minutes)")  # fmt: skip
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
        skip_naive=args.skip_naive,
    )
