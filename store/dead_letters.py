"""Dead letters after the fact: list them, show one, replay a selection back to the topic.

Owns: the SQL that reads and deletes `dead_letters` rows, and the replay procedure: publish
each selected payload byte for byte (with one attribute naming the row), wait for Pub/Sub
to confirm it, and only then delete that row. A payload whose publish failed keeps its
row, so nothing is ever lost; a crash between publish and delete can only replay a message
twice, which the newest-wins store absorbs.

Replay's delete is a small write from a second process while the supervisor's writer may be
running: it relies on WAL and the busy timeout (each chunk's delete is one short
transaction), not on any lock of its own.

Never: decode payloads, print, or create/migrate a database.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import apsw
from google.cloud import pubsub_v1

from broker import admin, client
from store.db import connect_existing
from store.errors import StoreUnavailable, translate_error

REPLAY_CHUNK = 500  # rows published, confirmed and deleted together: bounds memory and loss
# Every replayed message carries the id of the row it came from. Besides tracing, it is what
# lets an empty payload be published at all: Pub/Sub rejects a message with neither data nor
# attributes, and one such message fails the whole publish batch it rides in.
REPLAY_ATTRIBUTE = "miniscan_dead_letter_id"


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """One row of `dead_letters`."""

    id: int
    payload: bytes
    reason: str
    detail: str
    message_id: str
    received_at: float


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did; `failures` holds (dead letter id, one-line error) of kept rows."""

    selected: int
    republished: int
    deleted: int
    selected_ids: list[int] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)


class ReplayRefused(Exception):
    """Replaying now would lose messages (e.g. nothing subscribes to the topic)."""


_COLUMNS = "id, payload, reason, detail, message_id, received_at"


def count_by_reason(conn: apsw.Connection) -> list[tuple[str, int]]:
    """(reason, count) pairs, most frequent first."""
    try:
        rows = conn.execute(
            "SELECT reason, count(*) AS n FROM dead_letters GROUP BY reason ORDER BY n DESC, reason"
        ).fetchall()
    except apsw.Error as exc:
        raise translate_error(exc, "cannot read dead letters") from None
    return [(reason, n) for reason, n in rows]


def list_dead_letters(
    conn: apsw.Connection,
    *,
    reason: str | None = None,
    ids: Iterable[int] = (),
    after_id: int = 0,
    limit: int | None = None,
) -> list[StoredDeadLetter]:
    """Dead letters in id order (oldest first), filtered by reason and/or ids."""
    clauses, params = ["id > ?"], [after_id]
    if reason is not None:
        clauses.append("reason = ?")
        params.append(reason)
    wanted = sorted(set(ids))
    if wanted:
        clauses.append(f"id IN ({', '.join('?' * len(wanted))})")
        params.extend(wanted)
    sql = f"SELECT {_COLUMNS} FROM dead_letters WHERE {' AND '.join(clauses)} ORDER BY id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    try:
        return [StoredDeadLetter(*row) for row in conn.execute(sql, params)]
    except apsw.Error as exc:
        raise translate_error(exc, "cannot read dead letters") from None


def get_dead_letter(conn: apsw.Connection, letter_id: int) -> StoredDeadLetter | None:
    found = list_dead_letters(conn, ids=[letter_id])
    return found[0] if found else None


def delete_dead_letters(conn: apsw.Connection, ids: Sequence[int]) -> int:
    """Delete these rows in one short transaction; the number actually deleted."""
    if not ids:
        return 0
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = conn.total_changes()
            conn.executemany("DELETE FROM dead_letters WHERE id = ?", [(i,) for i in ids])
            deleted = conn.total_changes() - before
            conn.execute("COMMIT")
        except BaseException:
            if not conn.get_autocommit():
                conn.execute("ROLLBACK")
            raise
    except apsw.Error as exc:
        raise translate_error(exc, "cannot delete replayed dead letters") from None
    return deleted


def replay_dead_letters(
    db_path: str | os.PathLike[str],
    *,
    project: str,
    topic: str,
    reason: str | None = None,
    ids: Iterable[int] = (),
    dry_run: bool = False,
    publisher: pubsub_v1.PublisherClient | None = None,
    timeout_s: float = client.ADMIN_TIMEOUT_S,
    busy_timeout_ms: int = 5000,
) -> ReplayResult:
    """Republish the selected dead letters to `topic`, deleting each row once confirmed.

    With neither `reason` nor `ids` every dead letter is selected. `dry_run` only counts.
    Raises ReplayRefused when the topic has no subscription (the replay would vanish),
    PubSubUnavailable when Pub/Sub does not answer, StoreError subclasses for the database.
    """
    wanted = list(ids)
    conn = connect_existing(db_path, writable=not dry_run, busy_timeout_ms=busy_timeout_ms)
    own_publisher = publisher is None
    try:
        chunk = list_dead_letters(conn, reason=reason, ids=wanted, limit=REPLAY_CHUNK)
        if dry_run or not chunk:
            selected_ids = [row.id for row in list_dead_letters(conn, reason=reason, ids=wanted)]
            return ReplayResult(len(selected_ids), 0, 0, selected_ids)
        if own_publisher:
            publisher = client.publisher_client()
        topic_path = _checked_topic(publisher, project, topic, timeout_s)
        selected_ids, failures, republished, deleted = [], [], 0, 0
        while chunk:
            published, failed = _publish_chunk(publisher, topic_path, chunk, timeout_s)
            selected_ids.extend(row.id for row in chunk)
            failures.extend(failed)
            republished += len(published)
            try:
                deleted += delete_dead_letters(conn, published)
            except StoreUnavailable as exc:
                raise StoreUnavailable(
                    f"republished {len(published)} dead letters but could not delete them,"
                    f" so they would be replayed again: {exc}"
                ) from None
            chunk = list_dead_letters(
                conn, reason=reason, ids=wanted, after_id=chunk[-1].id, limit=REPLAY_CHUNK
            )
        return ReplayResult(len(selected_ids), republished, deleted, selected_ids, failures)
    finally:
        conn.close()
        if own_publisher and publisher is not None:
            publisher.stop()


def _checked_topic(
    publisher: pubsub_v1.PublisherClient, project: str, topic: str, timeout_s: float
) -> str:
    """Ensure the topic exists and that something subscribes to it."""
    admin.ensure_topic(publisher, project, topic, deadline=timeout_s)
    topic_path = publisher.topic_path(project, topic)
    try:
        subscriptions = list(
            publisher.list_topic_subscriptions(
                request={"topic": topic_path},
                retry=client.bounded_retry(timeout_s),
                timeout=timeout_s,
            )
        )
    except Exception as exc:  # any client error: report it, publish nothing
        raise client.PubSubUnavailable(
            f"cannot list subscriptions of {topic_path}: {exc}"
        ) from None
    if not subscriptions:
        raise ReplayRefused(
            f"topic {topic_path} has no subscription, so replayed messages would be lost;"
            " run `miniscan setup` first (nothing was replayed)"
        )
    return topic_path


def _publish_chunk(
    publisher: pubsub_v1.PublisherClient,
    topic_path: str,
    chunk: list[StoredDeadLetter],
    timeout_s: float,
) -> tuple[list[int], list[tuple[int, str]]]:
    """Publish every payload, then wait for each; (confirmed ids, [(id, error)])."""
    pending, failed = [], []
    for row in chunk:
        try:
            future = publisher.publish(
                topic_path,
                row.payload,
                retry=client.bounded_retry(timeout_s),
                timeout=timeout_s,
                **{REPLAY_ATTRIBUTE: str(row.id)},
            )
        except Exception as exc:  # a refused publish must only keep its row, not stop others
            failed.append((row.id, _one_line(exc)))
        else:
            pending.append((row.id, future))
    confirmed = []
    for letter_id, future in pending:
        try:
            future.result(timeout=timeout_s)
        except Exception as exc:  # same: the row stays for a later replay
            failed.append((letter_id, _one_line(exc)))
        else:
            confirmed.append(letter_id)
    return confirmed, failed


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
