"""Candidates `raw` and `raw-held`: the ceiling of this machine with this emulator, run as
their own processes.

Owns: a bare loop with the Google client, unary `pull(max_messages=1000)` (never past its
`--count`) and then `acknowledge` of what came back, no decoding, no database, until
`--count` messages were acknowledged (each acknowledge call returned, so the emulator
confirmed them). With `--hold-pulls K` the messages of the last K pulls stay
unacknowledged while the next pull runs: the least any consumer holds that acknowledges
only after its commit, since it must pull the next messages while the last ones are being
written. Google's emulator makes that expensive: its pull copies the whole undelivered
backlog whenever any message is outstanding (`MessageBacklog.updateExpiredAckDeadlines`,
bench/RESULTS.md), which K=0 never triggers.

With `--processes P` the loop runs in P processes at once on the same subscription, each
until its share of `--count` was acknowledged: what a consumer with P pullers that did no
work of its own could reach. `raw-held` is K=1 in one process per usable CPU, as many as
pull in a miniscan tree under a backlog by default (bench/emulator_hold.py `--pullers`
compares counts).

Never: do anything a processor must do besides pulling and acking; that is the point.
Talks to the benchmark on stdout: `ready <unix time>` once the subscription answered,
`done <unix time> <acked>` at the end.

    python bench/e2e_raw.py --project P --subscription S --count N [--hold-pulls K]
        [--processes P]
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
import traceback
from typing import TextIO

from google.cloud import pubsub_v1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--hold-pulls", type=int, default=0)
    parser.add_argument("--processes", type=int, default=1)
    options = parser.parse_args(argv)
    if options.processes <= 1:
        loop(options.project, options.subscription, options.count, options.hold_pulls, sys.stdout)
        return 0
    return run_processes(options)


def loop(
    project: str, subscription: str, count: int, hold_pulls: int, out: TextIO,
    go: int | None = None,
) -> None:  # fmt: skip
    """Pull and acknowledge until `count` were acknowledged; report on `out`. With `go` (a
    pipe's read end), wait after `ready` until a byte arrives on it before pulling."""
    client = pubsub_v1.SubscriberClient()
    path = client.subscription_path(project, subscription)
    client.get_subscription(request={"subscription": path})  # connects the channel
    print(f"ready {time.time():.6f}", file=out, flush=True)
    if go is not None and not os.read(go, 1):
        return  # the parent gave up
    acked = 0
    held: collections.deque[list[str]] = collections.deque()  # ack ids of each held pull
    pulled = 0
    while acked < count:
        if pulled < count:
            # Never more than this loop's share: with --processes, the others need theirs.
            asked = min(1000, count - pulled)
            response = client.pull(
                request={"subscription": path, "max_messages": asked}, timeout=30
            )
            ack_ids = [received.ack_id for received in response.received_messages]
            if ack_ids:
                held.append(ack_ids)
                pulled += len(ack_ids)
        while held and (len(held) > hold_pulls or pulled >= count):
            ack_ids = held.popleft()
            client.acknowledge(request={"subscription": path, "ack_ids": ack_ids})
            acked += len(ack_ids)
    print(f"done {time.time():.6f} {acked}", file=out, flush=True)
    client.close()


def run_processes(options: argparse.Namespace) -> int:
    """`loop` in `options.processes` forked children (forked before any gRPC channel exists
    here). Each connects and says so; once all have, they are let go at once, and that is
    when this reports `ready` (so no loop drains while another is still connecting); done
    when the last is done."""
    shares = [options.count // options.processes] * options.processes
    shares[-1] += options.count - sum(shares)
    go_read, go_write = os.pipe()
    children = []
    for share in shares:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            os.close(go_write)
            code = 1
            try:
                with os.fdopen(write_end, "w") as out:
                    loop(options.project, options.subscription, share, options.hold_pulls, out,
                         go=go_read)  # fmt: skip
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(write_end)
        children.append((pid, os.fdopen(read_end)))
    os.close(go_read)
    ready = [out.readline().split() for _, out in children]
    if all(ready):
        print(f"ready {time.time():.6f}", flush=True)
        os.write(go_write, b"g" * len(children))  # one byte each
        done = [out.readline().split() for _, out in children]
        if all(done):
            last = max(float(line[1]) for line in done)
            print(f"done {last:.6f} {sum(int(line[2]) for line in done)}", flush=True)
    os.close(go_write)  # a child still waiting for its byte reads end-of-file and returns
    # A child that failed printed its traceback and no report: the benchmark says it failed.
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid, _ in children]
    return 1 if any(codes) else 0


if __name__ == "__main__":
    sys.exit(main())
