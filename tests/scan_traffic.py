"""Test traffic for pipeline tests: payloads with a known final table, published for real.

Owns: building a workload (valid v1/v2 scans over a small key space, out of order and
duplicated, plus some poison messages), the table the store's rules say must result, and
publishing it to the emulator; and reading the table back from a real SQLite file.

Never: decide anything about decoding; the expected table follows the documented rules
(newest timestamp wins, then the greater response).
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

import apsw

from broker import client

SERVICES = ("HTTP", "SSH", "DNS")


@dataclass
class Workload:
    payloads: list[bytes] = field(default_factory=list)
    expected: dict[tuple[str, int, str], tuple[int, str]] = field(default_factory=dict)
    poison: int = 0


def build_workload(messages: int, keys: int, seed: int = 7, poison: int = 0) -> Workload:
    """`messages` valid scans over `keys` keys (shuffled, some duplicated) plus `poison` bad."""
    rng = random.Random(seed)
    workload = Workload(poison=poison)
    key_space = [(f"10.0.{k // 250}.{k % 250}", 1000 + k % 7, SERVICES[k % 3]) for k in range(keys)]
    for index in range(messages):
        ip, port, service = key_space[index % keys] if index < keys else rng.choice(key_space)
        timestamp = 1_700_000_000 + rng.randrange(0, 10_000)
        response = f"service response: {rng.randrange(1000)}"
        version = rng.choice((1, 2))
        data = (
            {"response_bytes_utf8": base64.b64encode(response.encode()).decode()}
            if version == 1
            else {"response_str": response}
        )
        scan = {"ip": ip, "port": port, "service": service.lower() if index % 5 == 0 else service,
                "timestamp": timestamp, "data_version": version, "data": data}  # fmt: skip
        workload.payloads.append(json.dumps(scan).encode())
        key = (ip, port, service)
        best = workload.expected.get(key)
        if best is None or (timestamp, response) > best:
            workload.expected[key] = (timestamp, response)
    duplicates = rng.sample(workload.payloads, k=max(0, messages // 50))
    workload.payloads.extend(duplicates)
    workload.payloads.extend(b"not json %d" % i for i in range(poison))
    rng.shuffle(workload.payloads)
    return workload


def publish_all(project: str, topic: str, payloads: Iterable[bytes]) -> int:
    publisher = client.publisher_client()
    path = publisher.topic_path(project, topic)
    futures = [publisher.publish(path, payload) for payload in payloads]
    for future in futures:
        future.result(timeout=60)
    return len(futures)


def read_table(db_path: str) -> dict[tuple[str, int, str], tuple[int, str]]:
    conn = apsw.Connection(db_path, flags=apsw.SQLITE_OPEN_READONLY)
    try:
        rows = conn.execute("SELECT ip, port, service, last_scanned, response FROM scans")
        return {(ip, port, service): (ts, response) for ip, port, service, ts, response in rows}
    finally:
        conn.close()


def count_dead_letters(db_path: str) -> int:
    conn = apsw.Connection(db_path, flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    finally:
        conn.close()
