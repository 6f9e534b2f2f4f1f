"""Scan traffic whose outcome is known: payloads to publish and the table they must leave.

Owns: the one workload the end-to-end tests and the benchmark publish (N messages over K
keys: the scanner visits the keys round-robin one second apart, half v1 / half v2, about
10% arrive after a later scan of their key, 2% are duplicates of other messages; on request
also scans tied with their key's previous one in the same second, service names spelled in
lower case, and poison messages), the table miniscan must make of it, and counting the rows
of a table read back that differ from it.

The expected table is worked out here, on the rule's own terms, not by importing the
store's: the scanner sits below `store/`, and an independent computation is what makes
comparing against it worth something (tests/test_scanner_workload.py holds the two equal on
random inputs). The rule: the greater timestamp wins; on equal timestamps the greater
response compared as UTF-8 bytes; then the greater data_version. Keys are canonical (what
the decoders store: canonical IP text, service stripped and upper-cased).

Never: touch Pub/Sub, SQLite or the clock; import `store/` or `workers/`; draw a random
number for an option left off, so that the benchmark's default stream stays byte-for-byte
the same from one version to the next (a test pins its digest).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from contracts.canonical import canonical_ip
from scanner.generate import encode_response, encode_scan

Key = tuple[str, int, str]  # ip, port, service, as stored
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
POISON = b"not json %d"  # dead-lettered as invalid_json


def precedence(row: Row) -> tuple[int, bytes, int]:
    """The sort key of newest-wins: of two rows of one key, the greater one is kept."""
    timestamp, response, data_version = row
    return (timestamp, response.encode("utf-8"), data_version)


def canonical_key(ip: str, port: int, service: str) -> Key:
    """The key a scan is stored under."""
    return (canonical_ip(ip), port, service.strip().upper())


def scan_payload(
    ip: str, port: int, service: str, timestamp: int, response: str, data_version: int
) -> bytes:
    """The message the scanner publishes for one scan (`scanner.generate`'s wire form)."""
    data = encode_response(response, data_version)
    scan = {"ip": ip, "port": port, "service": service, "timestamp": timestamp,
            "data_version": data_version, "data": data}  # fmt: skip
    return encode_scan(scan)


@dataclass
class Workload:
    """Payloads in the order they are to be published, and the table they must leave."""

    payloads: list[bytes] = field(default_factory=list)
    expected: dict[Key, Row] = field(default_factory=dict)
    out_of_order: int = 0  # scans that arrive after a later scan of their key
    duplicates: int = 0  # payloads that are copies of another
    ties: int = 0  # scans in the same second as their key's previous scan
    poison: int = 0  # payloads that must be dead-lettered

    def scan(
        self, ip: str, port: int, service: str, timestamp: int, response: str, data_version: int
    ) -> bytes:
        """The payload of one scan, noted in the expected table. Not appended to `payloads`:
        where it arrives is the caller's choice, and cannot change the table."""
        key = canonical_key(ip, port, service)
        row = (timestamp, response, data_version)
        current = self.expected.get(key)
        if current is None or precedence(row) > precedence(current):
            self.expected[key] = row
        return scan_payload(ip, port, service, timestamp, response, data_version)


def key_space(keys: int) -> list[Key]:
    """`keys` distinct (ip, port, service) keys in canonical form."""
    space = []
    for index in range(keys):
        host, variant = divmod(index, len(SERVICES))
        service, port = SERVICES[variant]
        space.append((f"10.{host >> 16 & 255}.{host >> 8 & 255}.{host & 255}", port, service))
    return space


def response_for(service: str, n: int) -> str:
    return HTTP_RESPONSE.format(n=n) if service == "HTTP" else BANNERS[service].format(n=n)


def build_workload(
    messages: int,
    keys: int,
    seed: int = 1,
    *,
    ties: float = 0.0,
    lower_case: float = 0.0,
    poison: int = 0,
) -> Workload:
    """`messages` payloads in arrival order (plus `poison` bad ones), and their table.

    Message i scans key i % keys at BASE_TIME + i. Then 10% of the messages are held back by
    one to two rounds (they arrive after the next scan of their key), and 2% of the slots
    carry a copy of another message instead of a new scan. Options, all off by default:
    `ties`, the share of scans that take their key's previous timestamp, so that the tie
    rules decide; `lower_case`, the share whose service is sent in lower case; `poison`,
    how many undecodable messages are mixed in.
    """
    if messages < 1 or keys < 1:
        raise ValueError("messages and keys must be positive")
    rng = random.Random(seed)
    space = key_space(min(keys, messages))
    duplicates = int(messages * DUPLICATE_SHARE)
    scans = messages - duplicates
    workload = Workload(duplicates=duplicates, poison=poison)
    last_timestamp: dict[Key, int] = {}
    # (arrival position, tie-break, payload): sorting by position gives the arrival order.
    arrivals: list[tuple[float, int, bytes]] = []
    # Only a scan with a later one of its key can arrive after it: those are sampled more
    # often, so that OUT_OF_ORDER_SHARE of all scans arrive out of order.
    can_lag = scans - len(space)
    lag_chance = min(1.0, OUT_OF_ORDER_SHARE * scans / can_lag) if can_lag > 0 else 0.0
    for index in range(scans):
        key = ip, port, service = space[index % len(space)]
        timestamp = BASE_TIME + index
        data_version = 1 if rng.random() < 0.5 else 2
        response = response_for(service, rng.randrange(1000))
        if ties and key in last_timestamp and rng.random() < ties:
            timestamp = last_timestamp[key]
            workload.ties += 1
        last_timestamp[key] = timestamp
        if lower_case and rng.random() < lower_case:
            service = service.lower()
        payload = workload.scan(ip, port, service, timestamp, response, data_version)
        position = float(index)
        if index < can_lag and rng.random() < lag_chance:
            position += rng.uniform(1.0, 2.0) * len(space)  # behind the key's next scan
            workload.out_of_order += 1
        arrivals.append((position, index, payload))
    for _ in range(duplicates):
        _, index, payload = arrivals[rng.randrange(scans)]
        arrivals.append((rng.uniform(0, scans), scans + index, payload))
    for number in range(poison):
        arrivals.append((rng.uniform(0, scans), 2 * scans + number, POISON % number))
    arrivals.sort()
    workload.payloads = [payload for _, _, payload in arrivals]
    return workload


def rows_wrong(expected: Mapping[Key, Row], actual: Mapping[Key, Row]) -> int:
    """Keys whose row is missing, different, or present but not expected."""
    wrong = sum(1 for key, row in expected.items() if actual.get(key) != row)
    return wrong + sum(1 for key in actual if key not in expected)
