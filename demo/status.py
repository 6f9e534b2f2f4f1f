"""The figures of `miniscan demo`'s status line, from scraped /metrics text.

Owns: turning a /metrics exposition (parsed by `demo.scrape`) into a `Snapshot`,
estimating a quantile from cumulative histogram buckets (the benchmark's latency mode uses
the same estimate), and formatting one status line over the last few seconds of snapshots.
Every function here is pure: the caller scrapes and prints.

Never: open a socket, read the clock or write to the terminal.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from demo.scrape import histogram_buckets, parse_samples, totals_by_name

LATENCY_METRIC = "miniscan_end_to_end_latency_seconds"
RATE_WINDOW_S = 5.0  # msgs/s and latency quantiles cover about the last few seconds


@dataclass(frozen=True)
class Snapshot:
    """The figures of one /metrics scrape that the status line shows."""

    at: float  # time.monotonic() of the scrape
    stored: float
    rows: float
    dead_letters: float
    latency_buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count)


def parse_snapshot(text: str, at: float) -> Snapshot:
    """Read a Prometheus text exposition; samples of one name are summed over their labels."""
    samples = parse_samples(text)
    totals = totals_by_name(samples)
    return Snapshot(
        at=at,
        stored=totals.get("miniscan_messages_stored_total", 0.0),
        rows=totals.get("miniscan_scans_rows", 0.0),
        dead_letters=totals.get("miniscan_messages_dead_lettered_total", 0.0),
        latency_buckets=histogram_buckets(samples, LATENCY_METRIC),
    )


def estimate_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram, as Prometheus's histogram_quantile estimates it.

    `buckets` are (upper bound, cumulative count) sorted by bound, the last one +Inf. The
    value is interpolated linearly inside the bucket that holds the rank (the first bucket
    starts at 0); a rank in the +Inf bucket gives the highest finite bound. None when the
    histogram is empty.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is not between 0 and 1")
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for upper_bound, count in buckets:
        if count >= rank and count > lower_count:
            if math.isinf(upper_bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count)
            return lower_bound + (upper_bound - lower_bound) * share
        lower_bound, lower_count = upper_bound, count
    return lower_bound


def bucket_increase(
    current: Sequence[tuple[float, float]], earlier: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """The observations between two scrapes of the same cumulative histogram."""
    before = dict(earlier)
    return [(bound, max(0.0, count - before.get(bound, 0.0))) for bound, count in current]


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.1f}s"


def format_status(current: Snapshot, earlier: Snapshot | None) -> str:
    """One line: stored msgs/s and latency over the span since `earlier`, totals as of now."""
    if earlier is not None and current.at > earlier.at:
        rate = f"{(current.stored - earlier.stored) / (current.at - earlier.at):.0f}"
        window = bucket_increase(current.latency_buckets, earlier.latency_buckets)
    else:
        rate, window = "-", list(current.latency_buckets)
    return (
        f"stored {rate} msg/s | rows {current.rows:.0f} | dead letters {current.dead_letters:.0f}"
        f" | latency p50 {format_seconds(estimate_quantile(0.5, window))}"
        f" p99 {format_seconds(estimate_quantile(0.99, window))}"
    )


class StatusWindow:
    """The last few seconds of snapshots, so that rates are recent rather than since start."""

    def __init__(self, span_s: float = RATE_WINDOW_S) -> None:
        self._span_s = span_s
        self._snapshots: deque[Snapshot] = deque()

    def add(self, snapshot: Snapshot) -> str:
        self._snapshots.append(snapshot)
        while snapshot.at - self._snapshots[0].at > self._span_s:
            self._snapshots.popleft()
        earlier = self._snapshots[0] if len(self._snapshots) > 1 else None
        return format_status(snapshot, earlier)
