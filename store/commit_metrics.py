"""What the metrics say after the writer committed a batch.

Owns: `record_commit`, the one place the writer's per-commit figures are recorded: commit
duration, batch size, messages stored and dead-lettered by reason, publish-to-commit latency
and the time of the last commit.

Never: touch the database or the pipe, or run before the commit returned.
"""

from __future__ import annotations

import time
from collections import Counter

from contracts import metrics
from contracts.messages import DecodedBatch


def record_commit(batches: list[DecodedBatch], refused: int, duration_s: float) -> None:
    """A commit of `batches` returned after `duration_s`; `refused` records were refused."""
    committed_at = time.time()
    records = sum(len(batch.records) for batch in batches)
    letters = [letter for batch in batches for letter in batch.dead_letters]
    metrics.COMMIT_DURATION.observe(duration_s)
    metrics.BATCH_SIZE.observe(records + len(letters))
    metrics.MESSAGES_STORED.inc(records - refused)
    for reason, count in Counter(letter.reason for letter in letters).items():
        metrics.MESSAGES_DEAD_LETTERED.labels(reason).inc(count)
    # Every record's latency, added to the histogram in one write per bucket: observing
    # them one by one was ~10% of the writer's CPU (issue 13, bench/RESULTS.md).
    metrics.observe_many(
        metrics.END_TO_END_LATENCY,
        [max(0.0, committed_at - p) for b in batches for p in b.record_publish_times],
    )
    metrics.LAST_COMMIT.set(committed_at)
    metrics.QUEUE_DEPTH.labels("pending_commit").set(0)
