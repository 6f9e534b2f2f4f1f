"""Build mock scan results exactly as the real scanner publishes them.

Owns: the wire shape of a scan (`{"ip", "port", "service", "timestamp", "data_version",
"data"}`), the two response encodings (version 1: base64 of the UTF-8 bytes in
`data.response_bytes_utf8`; version 2: the text in `data.response_str`), and the random
choices behind a stream of scans. Every random choice comes from one `random.Random`, so a
seed fixes the stream.

Choices the original tool left open, made here:
- Ports are realistic per service (HTTP 80/443/8080, SSH 22/2222, DNS 53) by default, so that
  the `(ip, port, service)` keys repeat the way real scans do and "newest scan wins" gets
  exercised; `ports="any"` draws a uniformly random port 1..65535 as the original scanner
  does (keys then almost never repeat).
- Addresses are drawn from a CIDR's usable hosts (`1.1.1.0/24` gives 1.1.1.1..1.1.1.254).
- `--seed` makes the whole payload stream byte-identical: a seeded stream takes its
  timestamps from a fixed start (`SEEDED_START_TIME`, then one second per scan, as if the
  scanner had run at its default one message a second) instead of the clock.

Never: touch Pub/Sub, print, or read the clock except through the `clock` passed in.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import time
from collections.abc import Callable, Iterator
from itertools import count as count_up
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_CIDR = "1.1.1.0/24"
SERVICE_PORTS: dict[str, tuple[int, ...]] = {
    "HTTP": (80, 443, 8080),
    "SSH": (22, 2222),
    "DNS": (53,),
}
SERVICES = tuple(SERVICE_PORTS)
DATA_VERSIONS = (1, 2)
PORT_MODES = ("service", "any")  # realistic per service (default), or the original's uniform
ANY_PORT = (1, 65535)
# 2023-11-14T22:13:20Z: fixed and recognisable, so seeded fixtures never depend on today.
SEEDED_START_TIME = 1_700_000_000
RESPONSE_NUMBERS = 1000


def parse_cidr(text: str) -> IPNetwork:
    """The network a CIDR names; host bits are allowed (`1.1.1.7/24` means `1.1.1.0/24`).

    Raises ValueError with a one-line message for anything that is not a CIDR.
    """
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not a CIDR like 1.1.1.0/24") from None


def host_offsets(network: IPNetwork) -> range:
    """Offsets of the usable hosts: without network and broadcast addresses where they exist."""
    size = network.num_addresses
    if isinstance(network, ipaddress.IPv4Network) and size > 2:
        return range(1, size - 1)
    if isinstance(network, ipaddress.IPv6Network) and size > 2:
        return range(1, size)  # IPv6 has no broadcast; offset 0 is the subnet-router anycast
    return range(size)


def pick_ip(rng: random.Random, network: IPNetwork) -> str:
    offsets = host_offsets(network)
    return str(network.network_address + rng.randrange(offsets.start, offsets.stop))


def response_text(number: int) -> str:
    return f"service response: {number}"


def encode_response(text: str, data_version: int) -> dict[str, str]:
    """The `data` object of a scan for a response text, in the given wire version."""
    if data_version == 1:
        return {"response_bytes_utf8": base64.b64encode(text.encode("utf-8")).decode("ascii")}
    if data_version == 2:
        return {"response_str": text}
    raise ValueError(f"unknown data_version {data_version!r}; known: {DATA_VERSIONS}")


def random_scan(
    rng: random.Random, network: IPNetwork, timestamp: int, ports: str = "service"
) -> dict[str, Any]:
    """One scan: random host, service, a port (one that service runs on, or with
    `ports="any"` any port), version and response."""
    ip = pick_ip(rng, network)
    service = rng.choice(SERVICES)
    if ports == "service":
        port = rng.choice(SERVICE_PORTS[service])
    elif ports == "any":
        port = rng.randint(*ANY_PORT)
    else:
        raise ValueError(f"ports must be one of {PORT_MODES}, not {ports!r}")
    data_version = rng.choice(DATA_VERSIONS)
    text = response_text(rng.randrange(RESPONSE_NUMBERS))
    return {
        "ip": ip,
        "port": port,
        "service": service,
        "timestamp": timestamp,
        "data_version": data_version,
        "data": encode_response(text, data_version),
    }


def encode_scan(scan: dict[str, Any]) -> bytes:
    """The message bytes for a scan: compact JSON (ASCII, non-ASCII escaped), keys in wire order."""
    return json.dumps(scan, separators=(",", ":")).encode("utf-8")


def scan_dicts(
    seed: int | None,
    count: int,
    ips: str | IPNetwork = DEFAULT_CIDR,
    start_time: int | None = None,
    clock: Callable[[], float] = time.time,
    ports: str = "service",
) -> Iterator[dict[str, Any]]:
    """`count` scans (0 = forever), lazily, so unseeded timestamps are the time of use.

    Timestamps: `start_time + i` when `start_time` is given; `SEEDED_START_TIME + i` when only
    `seed` is; otherwise the clock, read as each scan is taken from the iterator.
    """
    if count < 0:
        raise ValueError(f"count must be 0 (forever) or positive, not {count}")
    network = parse_cidr(ips) if isinstance(ips, str) else ips
    rng = random.Random(seed)
    if start_time is None and seed is not None:
        start_time = SEEDED_START_TIME
    indices = count_up() if count == 0 else range(count)
    for index in indices:
        timestamp = int(clock()) if start_time is None else start_time + index
        yield random_scan(rng, network, timestamp, ports)


def scan_payloads(
    seed: int | None,
    count: int,
    ips: str | IPNetwork = DEFAULT_CIDR,
    start_time: int | None = None,
    clock: Callable[[], float] = time.time,
    ports: str = "service",
) -> Iterator[bytes]:
    """The message bytes of `scan_dicts(...)`: what the scanner publishes."""
    for scan in scan_dicts(seed, count, ips, start_time=start_time, clock=clock, ports=ports):
        yield encode_scan(scan)
