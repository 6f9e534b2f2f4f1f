"""What a Pub/Sub server charges a consumer for holding messages while it pulls more.

Issue 13 found Google's emulator spending 2-3x more CPU a message serving miniscan than
serving the bare pull-and-ack loop (`raw`). The reason is in the emulator's
`MessageBacklog.pull`: it first calls `updateExpiredAckDeadlines`, which returns at once
when no message is outstanding and otherwise builds a new `LinkedHashSet` of the expired
messages followed by *every undelivered message* (read with `javap -c` on
cloud-pubsub-emulator-0.8.20). A pull that runs while anything is leased therefore costs
O(backlog), and a drain of N messages in pulls of at most 100 costs O(N^2 / 200). `raw`
acks each pull before the next, so it never pays; any consumer that acks only after its
commit must pull while its last messages are being written, so it always does.

This runs the bare loop (`e2e_raw.py`) holding the last K pulls unacknowledged for each K
given, in P processes at once for each P of `--pullers`, on fresh subscriptions of the same
backlog, in rounds, and prints msgs/s and the server's CPU per message, with the ratio to
the round's first case (P=1, K=0 by default: `raw`). Two processes that each hold a pull
are the most an acknowledge-after-commit consumer with two pullers could reach if its own
work cost nothing (RESULTS "fifth pass").

    .venv/bin/python bench/emulator_hold.py [--n 50000] [--hold-pulls 0,1,3,10,20]
        [--pullers 1] [--rounds 2] [--warm-up 100000]
        [--emulator-host HOST:PORT  (one already running: its CPU unmeasured)]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_candidates import Testbed, drain_raw

from scanner.workload import build_workload
from testkit.emulator import DESCRIPTIONS, start_emulator

WARM_UP = 100_000


def drain(
    testbed: Testbed, payloads: list[bytes], hold_pulls: int, pullers: int = 1
) -> tuple[float, float]:
    """msgs/s and the server's CPU us a message, one fresh subscription."""
    figures = drain_raw(testbed, payloads, hold_pulls, pullers)
    return figures.rate, 1e6 * figures.emulator_cpu_s / len(payloads)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--hold-pulls", default="0,1,3,10,20")
    parser.add_argument("--pullers", default="1", help="processes pulling at once, e.g. 1,2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warm-up", type=int, default=WARM_UP, help="messages, not timed")
    parser.add_argument("--emulator-host")
    options = parser.parse_args(argv)
    cases = [
        (int(p), int(k)) for p in options.pullers.split(",") for k in options.hold_pulls.split(",")
    ]
    payloads = build_workload(options.n, max(1, options.n // 4), 0).payloads
    with (
        tempfile.TemporaryDirectory(prefix="emulator-hold-") as workdir,
        contextlib.ExitStack() as stack,
    ):
        if options.emulator_host:
            host, pid, server = (
                options.emulator_host,
                None,
                f"one already running at {options.emulator_host}",
            )
        else:
            emulator = start_emulator(log_dir=workdir)
            stack.callback(emulator.stop)
            host, pid, server = emulator.host, emulator.process.pid, DESCRIPTIONS[emulator.kind]
        os.environ["PUBSUB_EMULATOR_HOST"] = host
        testbed = Testbed(host, pid, Path(workdir))
        print(f"Pub/Sub server: {server}; backlog {options.n:,}")
        if options.warm_up:  # the emulator's JIT is cold at first
            warm_up = build_workload(options.warm_up, max(1, options.warm_up // 4), 1)
            drain(testbed, warm_up.payloads, 0)
        results: dict[tuple[int, int], list[tuple[float, float, float]]] = {c: [] for c in cases}
        for _ in range(options.rounds):
            first = None
            for pullers, k in cases:
                rate, cpu_us = drain(testbed, payloads, k, pullers)
                first = rate if first is None else first
                results[pullers, k].append((rate, cpu_us, rate / first))
    print("| pullers | pulls held | msgs/s (each round) | server CPU us/msg | vs first |")
    print("|--:|--:|--:|--:|--:|")
    for (pullers, k), rows in results.items():
        rates = ", ".join(f"{rate:,.0f}" for rate, _, _ in rows)
        cpu = statistics.median(c for _, c, _ in rows)
        share = statistics.median(s for _, _, s in rows)
        cpu_text = "-" if math.isnan(cpu) else f"{cpu:.1f}"
        print(f"| {pullers} | {k} | {rates} | {cpu_text} | {share:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
