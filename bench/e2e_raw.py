"""Candidates `raw` and `raw-held`: the ceiling of this machine with this emulator, run as
its own process.

Owns: a bare loop with the Google client, unary `pull(max_messages=1000)` and then
`acknowledge` of what came back, no decoding, no database, until `--count` messages were
acknowledged (each acknowledge call returned, so the emulator confirmed them). With
`--hold-pulls K` (`raw-held` is K=1) the messages of the last K pulls stay unacknowledged
while the next pull runs: the least any consumer holds that acknowledges only after its
commit, since it must pull the next messages while the last ones are being written.
Google's emulator makes that expensive: its pull copies the whole undelivered backlog
whenever any message is outstanding (`MessageBacklog.updateExpiredAckDeadlines`, bench/
RESULTS.md), which K=0 never triggers.

Never: do anything a processor must do besides pulling and acking; that is the point.
Talks to the benchmark on stdout: `ready <unix time>` once the subscription answered,
`done <unix time> <acked>` at the end.

    python bench/e2e_raw.py --project P --subscription S --count N
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

from google.cloud import pubsub_v1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--hold-pulls", type=int, default=0)
    options = parser.parse_args(argv)
    client = pubsub_v1.SubscriberClient()
    path = client.subscription_path(options.project, options.subscription)
    client.get_subscription(request={"subscription": path})  # connects the channel
    print(f"ready {time.time():.6f}", flush=True)
    acked = 0
    held: collections.deque[list[str]] = collections.deque()  # ack ids of each held pull
    pulled = 0
    while acked < options.count:
        if pulled < options.count:
            response = client.pull(
                request={"subscription": path, "max_messages": 1000}, timeout=30
            )
            ack_ids = [received.ack_id for received in response.received_messages]
            if ack_ids:
                held.append(ack_ids)
                pulled += len(ack_ids)
        while held and (len(held) > options.hold_pulls or pulled >= options.count):
            ack_ids = held.popleft()
            client.acknowledge(request={"subscription": path, "ack_ids": ack_ids})
            acked += len(ack_ids)
    print(f"done {time.time():.6f} {acked}", flush=True)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
