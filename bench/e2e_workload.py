"""The end-to-end benchmark's workloads: payloads to publish and the table they must produce.

Owns: the backlog of the issue (N messages over K keys, half v1 / half v2, about 10% arriving
after a newer scan of their key, 2% duplicates of other messages), the table miniscan's
newest-wins rule makes of it, comparing a table read back against it, and the latency
mode's payloads, which carry their own send time in the response so that a reader of the
database can tell how long each took.

Never: touch Pub/Sub, SQLite or the clock (the latency payload's send time is passed in).
The expected table follows the documented rule (newest timestamp wins); every key's scans
have distinct timestamps here, so the tie rules never decide.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

Key = tuple[str, int, str]
Row = tuple[int, str, int]  # last_scanned, response, data_version

OUT_OF_ORDER_SHARE = 0.10
DUPLICATE_SHARE = 0.02
BASE_TIME = 1_700_000_000
SERVICES = (("HTTP", 80), ("HTTP", 443), ("SSH", 22), ("DNS", 53))
BANNERS = {
    "SSH": "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.{n}\r\n",
    "DNS": "version.bind: 9.18.{n}-0ubuntu0.22.04.1-Ubuntu",
}
HTTP_RESPONSE = (
    "HTTP/1.1 200 OK\r\nServer: nginx/1.18.{n} (Ubuntu)\r\nContent-Type: text/html\r\n"
    "Content-Length: 612\r\nConnection: close\r\n\r\n<html><head><title>Welcome to nginx!"
    "</title></head><body><h1>Welcome to nginx!</h1></body></html>\n"
)


@dataclass
class Backlog:
    payloads: list[bytes] = field(default_factory=list)
    expected: dict[Key, Row] = field(default_factory=dict)
    out_of_order: int = 0  # messages that arrive after a newer scan of their key
    duplicates: int = 0


def key_space(keys: int) -> list[Key]:
    """`keys` distinct (ip, port, service) keys in canonical form (what decode_scan stores)."""
    space = []
    for index in range(keys):
        host, variant = divmod(index, len(SERVICES))
        service, port = SERVICES[variant]
        space.append((f"10.{host >> 16 & 255}.{host >> 8 & 255}.{host & 255}", port, service))
    return space


def response_for(service: str, n: int) -> str:
    return HTTP_RESPONSE.format(n=n) if service == "HTTP" else BANNERS[service].format(n=n)


def encode_scan(key: Key, timestamp: int, response: str, data_version: int) -> bytes:
    ip, port, service = key
    if data_version == 1:
        data = {"response_bytes_utf8": base64.b64encode(response.encode()).decode("ascii")}
    else:
        data = {"response_str": response}
    scan = {"ip": ip, "port": port, "service": service, "timestamp": timestamp,
            "data_version": data_version, "data": data}  # fmt: skip
    return orjson.dumps(scan)


def build_backlog(messages: int, keys: int, seed: int = 1) -> Backlog:
    """`messages` payloads in arrival order, and the table they must leave behind.

    The scanner visits the keys round-robin, one second apart, so message i scans key
    i % keys at BASE_TIME + i. Then 10% of the messages are held back by one to two rounds
    (they arrive after the next scan of their key), and 2% of the slots carry a copy of
    another message instead of a new scan: `messages` is what gets published.
    """
    if messages < 1 or keys < 1:
        raise ValueError("messages and keys must be positive")
    rng = random.Random(seed)
    space = key_space(min(keys, messages))
    duplicates = int(messages * DUPLICATE_SHARE)
    scans = messages - duplicates
    backlog = Backlog(duplicates=duplicates)
    # (arrival position, tie-break, payload): sorting by position gives the arrival order.
    arrivals: list[tuple[float, int, bytes]] = []
    # Only a scan with a newer one of its key can arrive after it: those are sampled more
    # often, so that OUT_OF_ORDER_SHARE of all scans arrive out of order.
    can_lag = scans - len(space)
    lag_chance = min(1.0, OUT_OF_ORDER_SHARE * scans / can_lag) if can_lag > 0 else 0.0
    for index in range(scans):
        key = space[index % len(space)]
        timestamp = BASE_TIME + index
        data_version = 1 if rng.random() < 0.5 else 2
        response = response_for(key[2], rng.randrange(1000))
        payload = encode_scan(key, timestamp, response, data_version)
        position = float(index)
        if index < can_lag and rng.random() < lag_chance:
            position += rng.uniform(1.0, 2.0) * len(space)  # behind the key's next scan
            backlog.out_of_order += 1
        arrivals.append((position, index, payload))
        backlog.expected[key] = (timestamp, response, data_version)  # newest so far
    for _ in range(duplicates):
        _, index, payload = arrivals[rng.randrange(scans)]
        arrivals.append((rng.uniform(0, scans), scans + index, payload))
    arrivals.sort()
    backlog.payloads = [payload for _, _, payload in arrivals]
    return backlog


def rows_wrong(expected: Mapping[Key, Row], actual: Mapping[Key, Row]) -> int:
    """Keys whose row is missing, different, or present but not expected."""
    wrong = sum(1 for key, row in expected.items() if actual.get(key) != row)
    return wrong + sum(1 for key in actual if key not in expected)


def latency_payload(index: int, sent_at: float) -> bytes:
    """A scan of a key no other latency message uses, whose response is its send time.

    One fresh key per message makes every commit a new row, so the reader finds each
    message by rowid instead of re-reading the table.
    """
    key = (f"172.{16 + (index >> 16 & 15)}.{index >> 8 & 255}.{index & 255}", 80, "HTTP")
    return encode_scan(key, BASE_TIME + index, f"sent_at={sent_at:.6f}", 1 + index % 2)


def sent_at_of(response: str) -> float | None:
    """The send time a latency payload carried, or None for any other response."""
    if not response.startswith("sent_at="):
        return None
    return float(response.removeprefix("sent_at="))
