"""The figures of `miniscan demo`'s status line, from scraped /metrics text.

Owns: turning a /metrics exposition (parsed by `testkit.scrape`, which also estimates the
latency quantiles, as the benchmark's latency mode does) into a `Snapshot`, and formatting
one status line over the last few seconds of snapshots, at most as wide as the caller says
(a redrawn line that wraps cannot be redrawn in place).
Every function here is pure: the caller measures the terminal, scrapes and prints.

Never: open a socket, read the clock or write to the terminal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from testkit.scrape import estimate_quantile, histogram_buckets, parse_samples, totals_by_name

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


@dataclass(frozen=True)
class StatusFigures:
    """The figures of one status line, already formatted."""

    rate: str  # stored msg/s, "-" before there are two scrapes
    rows: str
    dead_letters: str
    p50: str
    p99: str

    def long(self) -> str:
        return (
            f"stored {self.rate} msg/s | rows {self.rows} | dead letters {self.dead_letters}"
            f" | latency p50 {self.p50} p99 {self.p99}"
        )

    def short(self) -> str:
        """Every figure behind the shortest labels: under 40 columns for a demo's figures."""
        figures = f"{self.rate}/s rows {self.rows} dl {self.dead_letters}"
        return f"{figures} p50 {self.p50} p99 {self.p99}"


def status_figures(current: Snapshot, earlier: Snapshot | None) -> StatusFigures:
    """Stored msgs/s and latency over the span since `earlier`, totals as of now."""
    if earlier is not None and current.at > earlier.at:
        rate = f"{(current.stored - earlier.stored) / (current.at - earlier.at):.0f}"
        window = bucket_increase(current.latency_buckets, earlier.latency_buckets)
    else:
        rate, window = "-", list(current.latency_buckets)
    return StatusFigures(
        rate=rate,
        rows=f"{current.rows:.0f}",
        dead_letters=f"{current.dead_letters:.0f}",
        p50=format_seconds(estimate_quantile(0.5, window)),
        p99=format_seconds(estimate_quantile(0.99, window)),
    )


ELLIPSIS = "..."  # ASCII: the demo's stdout may not speak UTF-8


def fit_width(figures: StatusFigures, width: int | None) -> str:
    """The long line if it fits in `width` columns, else the short one, else the short one
    cut (marked with an ellipsis): never wider than `width`. None: no limit (not a terminal)."""
    long, short = figures.long(), figures.short()
    if width is None or len(long) <= width:
        return long
    if len(short) <= width:
        return short
    if width <= len(ELLIPSIS):
        return short[: max(width, 0)]
    return short[: width - len(ELLIPSIS)] + ELLIPSIS


def format_status(current: Snapshot, earlier: Snapshot | None, width: int | None = None) -> str:
    """One line: stored msgs/s and latency over the span since `earlier`, totals as of now;
    at most `width` columns."""
    return fit_width(status_figures(current, earlier), width)


class StatusWindow:
    """The last few seconds of snapshots, so that rates are recent rather than since start."""

    def __init__(self, span_s: float = RATE_WINDOW_S) -> None:
        self._span_s = span_s
        self._snapshots: deque[Snapshot] = deque()

    def add(self, snapshot: Snapshot, width: int | None = None) -> str:
        """The status line as of `snapshot`, at most `width` columns."""
        self._snapshots.append(snapshot)
        while snapshot.at - self._snapshots[0].at > self._span_s:
            self._snapshots.popleft()
        earlier = self._snapshots[0] if len(self._snapshots) > 1 else None
        return format_status(snapshot, earlier, width)
