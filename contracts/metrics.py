"""Every Prometheus metric miniscan exposes; the names are a contract for ops/.

Owns: the metric objects. Each process of the tree updates its own; in the supervisor they
are aggregated over all processes by prometheus_client's multiprocess mode (see
`supervisor.metrics_dir`), so counters stay monotonic across child restarts and a dead
child's counts are neither lost nor doubled.

Never: be imported before `prepare_metrics_dir()` ran in the supervisor, serve HTTP (that is
`supervisor.http`), or hold logic beyond `observe_many` (a bulk observe the library lacks).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

from contracts.reasons import ALL_REASONS

PUBSUB_CALLS = ("pull", "acknowledge", "modify_ack_deadline")

MESSAGES_PULLED = Counter("miniscan_messages_pulled", "Messages pulled from Pub/Sub.")
MESSAGES_STORED = Counter("miniscan_messages_stored", "Scan records durably committed.")
MESSAGES_DEAD_LETTERED = Counter(
    "miniscan_messages_dead_lettered",
    "Messages committed to dead_letters, by reason.",
    ["reason"],
)
MESSAGES_ACKED = Counter("miniscan_messages_acked", "Messages acknowledged after commit.")
MESSAGES_NACKED = Counter(
    "miniscan_messages_nacked", "Messages handed back to Pub/Sub for prompt redelivery."
)
PUBSUB_ERRORS = Counter(
    "miniscan_pubsub_errors",
    "Pub/Sub calls that failed (each failed attempt), by call and gRPC status code.",
    ["call", "code"],
)
BATCH_SIZE = Histogram(
    "miniscan_batch_size",
    "Messages per committed batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
)
COMMIT_DURATION = Histogram(
    "miniscan_commit_duration_seconds",
    "Time to write and durably commit one batch.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
END_TO_END_LATENCY = Histogram(
    "miniscan_end_to_end_latency_seconds",
    "From a message's Pub/Sub publish time to the commit that stored it.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
QUEUE_DEPTH = Gauge(
    "miniscan_queue_depth",
    "Messages waiting at each stage: in_flight (pulled, not yet acked), pending_commit.",
    ["queue"],
    multiprocess_mode="livesum",
)
CHILDREN_ALIVE = Gauge(
    "miniscan_children_alive",
    "Child processes alive, by role.",
    ["role"],
    multiprocess_mode="mostrecent",
)
DECODERS_PULLING = Gauge(
    "miniscan_decoders_pulling",
    "Decoders that may pull now: all while caught up, fewer while a backlog keeps the CPUs busy.",
    multiprocess_mode="mostrecent",
)
# The backlog signal to scale on without Cloud Monitoring (issue 27): how long the oldest
# message a decoder just pulled waited in the subscription. The largest over the live
# decoders; one that pulls nothing (caught up) shows 0.
PULL_LAG = Gauge(
    "miniscan_pull_lag_seconds",
    "Age, by publish time, of the oldest message in the latest pulls (0 while caught up).",
    multiprocess_mode="livemax",
)
CHILD_RESTARTS = Counter(
    "miniscan_child_restarts", "Child processes restarted after a crash or stall.", ["role"]
)
SCANS_ROWS = Gauge(
    "miniscan_scans_rows", "Rows in the scans table.", multiprocess_mode="mostrecent"
)
DATABASE_UP = Gauge(
    "miniscan_database_up",
    "1 while the writer can write the database, 0 while it waits out an outage or a lock.",
    multiprocess_mode="mostrecent",
)
DATABASE_ERRORS = Counter(
    "miniscan_database_errors",
    "Failed attempts to write the database, by kind (unavailable, locked).",
    ["kind"],
)
LAST_COMMIT = Gauge(
    "miniscan_last_commit_timestamp_seconds",
    "Unix time of the last durable commit.",
    multiprocess_mode="max",
)
# An Info metric is not supported in multiprocess mode; a gauge fixed at 1 is the usual form.
BUILD_INFO = Gauge(
    "miniscan_build_info",
    "Build and configuration of this miniscan.",
    ["version", "workers"],
    multiprocess_mode="mostrecent",
)


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """Observe every amount, exactly as `histogram.observe` would one by one (same buckets,
    same sum, same count), with one write per bucket touched instead of one per amount.

    Why: the writer observed each committed record's latency, and in multiprocess mode each
    observe is two mmap writes and a pid check: ~10% of the writer's CPU (issue 13).
    prometheus_client has no bulk observe, so this adds the counts to the value objects that
    `observe` itself increments (`_upper_bounds`, `_buckets`, `_sum`, read here only); if a
    release ever lays them out differently, it observes one by one (tests compare the two).
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if not amounts:
        return
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for amount in amounts:
            histogram.observe(amount)
        return
    counts = [0] * len(bounds)
    for amount in amounts:
        counts[bisect_left(bounds, amount)] += 1  # the first bound >= amount, as observe
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(count)
    total.inc(sum(amounts))


def export_known_labels() -> None:
    """Create every labelled series the dashboard and alerts read, at 0, so that their panels
    show 0 rather than "No data" before the first event (Prometheus' instrumentation
    practice: avoid missing metrics). Called once by the supervisor at start-up."""
    for reason in sorted(ALL_REASONS):
        MESSAGES_DEAD_LETTERED.labels(reason).inc(0)
    for role in ("writer", "decoder"):
        CHILD_RESTARTS.labels(role).inc(0)
    PULL_LAG.set(0)
    for kind in ("unavailable", "locked"):
        DATABASE_ERRORS.labels(kind).inc(0)
    for call in PUBSUB_CALLS:
        for code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            PUBSUB_ERRORS.labels(call, code).inc(0)
