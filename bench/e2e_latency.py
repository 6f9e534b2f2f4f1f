"""Latency mode: publish at a fixed rate into a running miniscan, and time every message.

Owns: a paced publisher (the client library's default batching: a batch leaves at most
10 ms after its first message, as in most producers, so that delay counts) whose payloads
carry their send time, a reader that polls the database for new rows every 5 ms and notes
when each message became visible, and the percentiles of both measures of latency:
- `db`: from the publish() call to the first poll that saw the committed row: the latency a
  reader of the database sees, at most one poll (5 ms, 2.5 ms on average) pessimistic;
- `histogram`: miniscan's own `miniscan_end_to_end_latency_seconds` (Pub/Sub's publish time
  to commit), interpolated within its buckets the way Prometheus' histogram_quantile does
  (`testkit.scrape.estimate_quantile`, the estimate `miniscan demo`'s status line shows).

Never: judge the figures (`e2e.py` does) or start the emulator.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field

import apsw
from e2e_candidates import Testbed, start_miniscan, stop_miniscan, wait_ready
from e2e_procs import TreeSampler
from e2e_pubsub import Target
from e2e_workload import latency_payload, sent_at_of

from broker import client
from testkit.scrape import estimate_quantile, histogram_buckets
from testkit.waiting import WaitTimedOut, wait_until

# Issue 13: the probe polled every 10 ms through the scanner's 20 ms publish batching, so
# up to 30 ms of every figure was the probe's; these are the figures.
POLL_INTERVAL_S = 0.005
HISTOGRAM = "miniscan_end_to_end_latency_seconds"


@dataclass
class LatencyFigures:
    rate: float  # asked for
    achieved_rate: float  # published per second, measured
    messages: int
    seen: int  # rows the reader saw
    db_percentiles: dict[float, float] = field(default_factory=dict)  # seconds
    histogram_percentiles: dict[float, float] = field(default_factory=dict)
    peak_tree_rss_kib: int = 0


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def histogram_quantile(fraction: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over cumulative (upper bound, count) buckets; NaN when
    the histogram is empty."""
    quantile = estimate_quantile(fraction, sorted(buckets))
    return math.nan if quantile is None else quantile


class CommitWatcher:
    """Polls the database for rows newer than the last seen; notes each one's latency."""

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-watcher", daemon=True)

    def start(self) -> CommitWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        conn = apsw.Connection(self.db_path, flags=apsw.SQLITE_OPEN_READONLY)
        last_rowid = 0
        try:
            while not self._stop.wait(POLL_INTERVAL_S):
                rows = conn.execute(
                    "SELECT rowid, response FROM scans WHERE rowid > ? ORDER BY rowid",
                    (last_rowid,),
                ).fetchall()
                seen_at = time.time()
                for rowid, response in rows:
                    last_rowid = rowid
                    sent_at = sent_at_of(response)
                    if sent_at is not None:
                        self.latencies.append(seen_at - sent_at)
        finally:
            conn.close()


def publish_paced(target: Target, rate: float, count: int) -> float:
    """Publish `count` latency payloads at `rate`/s; return the achieved rate.

    Follows a schedule (message i is due at start + i/rate) rather than sleeping 1/rate
    each time, so that late wake-ups are caught up instead of lowering the rate.
    """
    publisher = client.publisher_client()  # the library's defaults: 100 messages or 10 ms
    futures = []
    start = time.monotonic()
    for index in range(count):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        payload = latency_payload(index, time.time())
        futures.append(publisher.publish(target.topic_path, payload))
    elapsed = time.monotonic() - start
    for future in futures:
        future.result(timeout=120)
    publisher.stop()
    return count / elapsed if elapsed > 0 else math.inf


def measure_latency(
    testbed: Testbed, target: Target, rate: float, duration_s: float, db_path: str,
    extra: Sequence[str] = (),
) -> LatencyFigures:  # fmt: skip
    """Run miniscan with its default settings (plus `extra` flags); publish `rate`/s for
    `duration_s`."""
    count = max(1, round(rate * duration_s))
    miniscan = start_miniscan(testbed, target, db_path, None, *extra)
    sampler = TreeSampler(miniscan.process.pid).start()
    try:
        wait_ready(miniscan, "miniscan")
        watcher = CommitWatcher(db_path).start()
        try:
            achieved = publish_paced(target, rate, count)
            # Short of every commit after a minute, the figures cover those that were seen.
            with suppress(WaitTimedOut):
                wait_until(lambda: len(watcher.latencies) >= count, 60, "every commit", every=0.05)
        finally:
            watcher.stop()
        buckets = histogram_buckets(miniscan.samples(only=(HISTOGRAM,)), HISTOGRAM)
        stop_miniscan(miniscan, "miniscan")
    finally:
        miniscan.kill()
        sampler.stop()
    latencies = sorted(watcher.latencies)
    fractions = (0.5, 0.95, 0.99)
    return LatencyFigures(
        rate=rate,
        achieved_rate=achieved,
        messages=count,
        seen=len(latencies),
        db_percentiles={f: percentile(latencies, f) for f in fractions},
        histogram_percentiles={f: histogram_quantile(f, buckets) for f in fractions},
        peak_tree_rss_kib=sampler.peak_tree_rss_kib,
    )
