"""Dead letters after the fact: replay a selection back to the topic.

Owns: the replay procedure: publish each selected payload byte for byte (with one attribute
naming the row), wait for Pub/Sub to confirm it, and only then delete that row. A payload
whose publish failed keeps its row, so nothing is ever lost; a crash between publish and
delete can only replay a message twice, which the newest-wins store absorbs. It works on
either store through `store.reader` (listing and deleting are each backend's SQL:
`store.sqlite.reader`, `store.postgres.reader`); each chunk's delete is one short transaction
next to the running writers, with no lock of miniscan's own.

Never: hold SQL, call the Pub/Sub library (`broker.publisher` publishes and lists), decode
payloads, print, or create/migrate a database.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from contracts.defaults import DEFAULT_CONNECT_TIMEOUT_S
from store.connection_options import BUSY_TIMEOUT_MS
from store.errors import StoreUnavailable
from store.reader import open_store_reader
from store.rows import StoredDeadLetter

if TYPE_CHECKING:  # the Google client loads only when a replay publishes (broker.errors)
    from broker.publisher import TopicPublisher

REPLAY_CHUNK = 500  # rows published, confirmed and deleted together: bounds memory and loss
# Every replayed message carries the id of the row it came from. Besides tracing, it is what
# lets an empty payload be published at all: Pub/Sub rejects a message with neither data nor
# attributes, and one such message fails the whole publish batch it rides in.
REPLAY_ATTRIBUTE = "miniscan_dead_letter_id"


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did; `failures` holds (dead letter id, one-line error) of kept rows;
    `where` names the store (no password)."""

    selected: int
    republished: int
    deleted: int
    selected_ids: list[int] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    where: str = ""


class ReplayRefused(Exception):
    """Replaying now would lose messages (e.g. nothing subscribes to the topic)."""


def replay_dead_letters(
    target: str | os.PathLike[str],
    *,
    project: str,
    topic: str,
    reason: str | None = None,
    ids: Iterable[int] = (),
    dry_run: bool = False,
    publisher: TopicPublisher | None = None,
    timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> ReplayResult:
    """Republish the selected dead letters to `topic`, deleting each row once confirmed.

    `target` is a SQLite file path or a PostgreSQL URL. With neither `reason` nor `ids` every
    dead letter is selected. `dry_run` only counts (on a read-only connection). `publisher`,
    built here when None, must publish to `topic` of `project`.
    Raises ReplayRefused when the topic has no subscription (the replay would vanish),
    PubSubUnavailable when Pub/Sub does not answer, StoreError subclasses for the database.
    """
    wanted = list(ids)
    reader = open_store_reader(target, writable=not dry_run, busy_timeout_ms=busy_timeout_ms)
    where = reader.where
    own_publisher = publisher is None
    try:
        chunk = reader.list_dead_letters(reason=reason, ids=wanted, limit=REPLAY_CHUNK)
        if dry_run or not chunk:
            selected_ids = [row.id for row in reader.list_dead_letters(reason=reason, ids=wanted)]
            return ReplayResult(len(selected_ids), 0, 0, selected_ids, where=where)
        if own_publisher:
            from broker.publisher import TopicPublisher

            publisher = TopicPublisher.plain(project, topic)
        _check_subscribed(publisher, timeout_s)
        selected_ids, failures, republished, deleted = [], [], 0, 0
        while chunk:
            published, failed = _publish_chunk(publisher, chunk, timeout_s)
            selected_ids.extend(row.id for row in chunk)
            failures.extend(failed)
            republished += len(published)
            try:
                deleted += reader.delete_dead_letters(published)
            except StoreUnavailable as exc:
                raise StoreUnavailable(
                    f"republished {len(published)} dead letters but could not delete them,"
                    f" so they would be replayed again: {exc}"
                ) from None
            chunk = reader.list_dead_letters(
                reason=reason, ids=wanted, after_id=chunk[-1].id, limit=REPLAY_CHUNK
            )
        return ReplayResult(
            len(selected_ids), republished, deleted, selected_ids, failures, where=where
        )
    finally:
        reader.close()
        if own_publisher and publisher is not None:
            publisher.stop()


def _check_subscribed(publisher: TopicPublisher, timeout_s: float) -> None:
    """Ensure the topic exists and that something subscribes to it."""
    publisher.ensure_topic(deadline=timeout_s)
    if not publisher.subscriptions(deadline=timeout_s):
        raise ReplayRefused(
            f"topic {publisher.topic_path} has no subscription, so replayed messages would be"
            " lost; run `miniscan setup` first (nothing was replayed)"
        )


def _publish_chunk(
    publisher: TopicPublisher, chunk: list[StoredDeadLetter], timeout_s: float
) -> tuple[list[int], list[tuple[int, str]]]:
    """Publish every payload, then wait for each; (confirmed ids, [(id, error)])."""
    outcome = publisher.publish_confirmed(
        [(row.payload, {REPLAY_ATTRIBUTE: str(row.id)}) for row in chunk], timeout_s
    )
    confirmed = [chunk[index].id for index in outcome.confirmed]
    return confirmed, [(chunk[index].id, _one_line(exc)) for index, exc in outcome.failed]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
