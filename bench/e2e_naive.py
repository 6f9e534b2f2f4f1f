"""Candidate `naive`: the processor users write first, run as its own process.

Owns: a streaming-pull subscriber whose callback decodes the message with miniscan's own
decoder, upserts it with one durable commit and then acks it. Two flavors of the commit:
- `naive` (`--store scanstore`): `ScanStore.write_batch([record])`, i.e. miniscan's own
  schema, upsert, WAL and synchronous=FULL, one transaction per message; a rejected message
  becomes a dead letter, also one commit. The strongest naive processor: the reference.
- `naive-sqlite3` (`--store sqlite3`): the stdlib sqlite3 module with its defaults (rollback
  journal, synchronous=FULL), the same table and the same newest-wins upsert, `commit()`
  after each message: what most users write first.
The callbacks run on the client's thread pool, so the one connection is guarded by a lock,
as a careful user would do.

Never: batch, pipeline or tune anything: it stands for the straightforward design miniscan
is measured against. Its acks are the client's fire-and-forget `message.ack()`, so `done`
counts acks requested; the benchmark checks later that nothing came back.
Talks to the benchmark on stdout: `ready <unix time>`, then `done <unix time> <acked>`.

    python bench/e2e_naive.py --project P --subscription S --db PATH --count N \
        [--store scanstore|sqlite3]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import threading
import time
from collections.abc import Callable

from google.cloud import pubsub_v1

from contracts.records import DeadLetter, ScanRecord
from store.sqlite.writer import INSERT_DEAD_LETTER, UPSERT_SCAN, ScanStore
from workers.decode import Rejection, decode_scan

Commit = Callable[[ScanRecord | None, DeadLetter | None], None]


def scanstore_commit(db_path: str) -> Commit:
    store = ScanStore.open(db_path, synchronous="FULL")

    def commit(record: ScanRecord | None, letter: DeadLetter | None) -> None:
        store.write_batch([record] if record else [], [letter] if letter else [])

    return commit


def sqlite3_commit(db_path: str) -> Commit:
    ScanStore.open(db_path).close()  # the same schema as miniscan's
    conn = sqlite3.connect(db_path, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=DELETE")  # the default, which ScanStore changed

    def commit(record: ScanRecord | None, letter: DeadLetter | None) -> None:
        if record is not None:
            conn.execute(UPSERT_SCAN, (record.ip, record.port, record.service,
                                       record.timestamp, record.response,
                                       record.data_version, record.timestamp))  # fmt: skip
        if letter is not None:
            conn.execute(INSERT_DEAD_LETTER, (letter.payload, letter.reason, letter.detail,
                                              letter.message_id, letter.received_at))  # fmt: skip
        conn.commit()

    return commit


STORES = {"scanstore": scanstore_commit, "sqlite3": sqlite3_commit}


class NaiveProcessor:
    def __init__(self, commit: Commit, count: int) -> None:
        self.commit = commit
        self.count = count
        self.acked = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, message: pubsub_v1.subscriber.message.Message) -> None:
        try:
            record, letter = decode_scan(message.data), None
        except Rejection as rejection:
            record = None
            letter = DeadLetter(message.data, rejection.reason, message.message_id, time.time())
        with self._lock:
            self.commit(record, letter)
        message.ack()
        with self._lock:
            self.acked += 1
            if self.acked >= self.count:
                self.done.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", required=True)
    parser.add_argument("--subscription", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--store", choices=sorted(STORES), default="scanstore")
    options = parser.parse_args(argv)
    commit = STORES[options.store](options.db)
    client = pubsub_v1.SubscriberClient()
    path = client.subscription_path(options.project, options.subscription)
    client.get_subscription(request={"subscription": path})  # connects the channel
    processor = NaiveProcessor(commit, options.count)
    print(f"ready {time.time():.6f}", flush=True)
    future = client.subscribe(path, processor)
    processor.done.wait()
    print(f"done {time.time():.6f} {processor.acked}", flush=True)
    future.cancel()  # sends the acks still queued in the client, then stops the stream
    future.result(timeout=30)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
