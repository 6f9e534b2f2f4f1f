"""Shared fixtures: one real Pub/Sub server per test session, fresh names per test.

The server is the one `testkit.emulator.start_emulator` picks: Google's emulator where it is
installed, else the built-in one (localpubsub); MINISCAN_PUBSUB_SERVER=google|builtin forces
either, and the run's header (tests/preflight.py) names it. Set MINISCAN_REQUIRE_EMULATOR=1
(CI does) to turn a server that cannot start into a failure instead of a skip, so that CI can
never pass without having exercised a real one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from broker import admin, client
from contracts import defaults
from testkit.emulator import EmulatorError, emulator_env, start_emulator
from testkit.postgres_cluster import Cluster, PostgresMissing, start_cluster

PROJECT = defaults.DEFAULT_PROJECT


@dataclass(frozen=True)
class PubSubTarget:
    """A fresh topic and subscription on the session's emulator."""

    host: str
    project: str
    topic: str
    subscription: str


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start the Pub/Sub server once; yield its host:port with PUBSUB_EMULATOR_HOST pointing
    at it."""
    try:
        emulator = start_emulator(
            project=PROJECT, log_dir=str(tmp_path_factory.mktemp("emulator"))
        )
    except EmulatorError as exc:
        if os.environ.get("MINISCAN_REQUIRE_EMULATOR") == "1":
            pytest.fail(f"emulator required but unavailable: {exc}")
        pytest.skip(str(exc))
    with emulator_env(emulator.host):
        try:
            yield emulator.host
        finally:
            emulator.stop()


@pytest.fixture
def pubsub_target(pubsub_emulator: str) -> PubSubTarget:
    """A topic and a subscription on it, named uniquely for this test, both created."""
    suffix = uuid.uuid4().hex[:10]
    target = PubSubTarget(
        host=pubsub_emulator,
        project=PROJECT,
        topic=f"scan-topic-{suffix}",
        subscription=f"scan-sub-{suffix}",
    )
    publisher = client.publisher_client()
    subscriber = client.subscriber_client()
    try:
        admin.ensure_topic(publisher, target.project, target.topic)
        admin.ensure_subscription(
            subscriber, target.project, target.topic, target.subscription
        )
    finally:
        subscriber.close()
    return target


# PostgreSQL (issue 14): one throw-away cluster per session (testkit.postgres_cluster), a
# fresh database per test.


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of its own for the session; stopped and deleted at the end.

    Missing PostgreSQL (or psycopg) skips, unless MINISCAN_REQUIRE_EMULATOR=1 (CI): then
    it fails, so that CI never passes without the real server.
    """
    try:
        import psycopg  # noqa: F401  (the dev extra installs it; `postgres` for users)

        cluster = start_cluster()
    except (PostgresMissing, ImportError) as exc:
        reason = str(exc) if isinstance(exc, PostgresMissing) else "pip install 'psycopg[binary]'"
        if os.environ.get("MINISCAN_REQUIRE_EMULATOR") == "1":
            pytest.fail(f"PostgreSQL required but unavailable: {reason}")
        pytest.skip(reason)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: Cluster) -> str:
    """The URL of a new, empty database on the session's cluster, for this test alone."""
    return postgres_cluster.create_database()


@pytest.fixture
def partitioned_postgres_url(postgres_cluster: Cluster) -> str:
    """The URL of another new database, with miniscan's tables in it and `scans` spread over
    4 hash partitions of ip (`miniscan partition`): the writer's tests run on both layouts."""
    from store.postgres.partition import partition_database
    from store.postgres.writer import PostgresStore

    url = postgres_cluster.create_database()
    PostgresStore.open(url).close()
    partition_database(url, 4)
    return url
