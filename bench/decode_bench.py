"""Benchmark `workers.decode.decode_scan` on one core over a realistic message mix.

Owns: a small deterministic generator of scan payloads (half v1, half v2, 2% invalid of
varied kinds, banner and HTML responses of realistic sizes, 10% IPv6), and timed loops that
print messages per second for `decode_scan` next to bare JSON parsing measured in the same
run, so the figures are read as ratios rather than as absolute numbers from a noisy machine.

Never: touch Pub/Sub or SQLite, or depend on `scanner/` (it has its own generator). It also
checks its own honesty: a payload generated as valid that is rejected, or the reverse, makes
it exit 1, so a fast but wrong decoder cannot post a figure.

    .venv/bin/python bench/decode_bench.py [--messages 200000] [--repeat 3] [--seed 1]
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from workers.decode import Rejection, canonical_ip, decode_scan

INVALID_SHARE = 0.02
IPV6_SHARE = 0.10
PORTS_PER_HOST = 4  # a scanner reports a few open ports per host: repeats hit the IP cache

SERVICES = (("http", 80), ("https", 443), ("ssh", 22), ("ftp", 21), ("smtp", 25), ("redis", 6379))
BANNERS = {
    "ssh": "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n",
    "ftp": "220 ProFTPD 1.3.5e Server (Debian) [::ffff:10.0.0.7]\r\n",
    "smtp": "220 mail.example.net ESMTP Postfix (Ubuntu)\r\n",
    "redis": "-NOAUTH Authentication required.\r\n",
}
HTML_LINE = '<p class="note">Welcome to our site, please <a href="/login">log in</a>.</p>\n'
HTML_TITLES = ("Welcome to nginx!", "Apache2 Ubuntu Default Page", "Accueil — Société Générale")


@dataclass(frozen=True)
class Workload:
    payloads: list[bytes]
    invalid: int  # how many payloads were generated to be rejected


def generate_workload(count: int, seed: int, distinct_ips: bool) -> Workload:
    """Build `count` payloads; with `distinct_ips` every message has its own host."""
    rng = random.Random(seed)
    host_count = count if distinct_ips else max(1, count // PORTS_PER_HOST)
    hosts = [_random_ip(rng) for _ in range(host_count)]
    if distinct_ips:
        rng.shuffle(hosts)
    payloads = []
    invalid = 0
    for index in range(count):
        message = _valid_message(rng, hosts[index] if distinct_ips else rng.choice(hosts))
        if rng.random() < INVALID_SHARE:
            payloads.append(_spoil(rng, message))
            invalid += 1
        else:
            payloads.append(orjson.dumps(message))
    return Workload(payloads, invalid)


def _random_ip(rng: random.Random) -> str:
    if rng.random() < IPV6_SHARE:
        return f"2001:db8:{rng.getrandbits(16):x}::{rng.getrandbits(16):x}"
    return ".".join(str(rng.randrange(1, 255)) for _ in range(4))


def _valid_message(rng: random.Random, ip: str) -> dict:
    service, port = rng.choice(SERVICES)
    response = _http_response(rng) if service.startswith("http") else BANNERS[service]
    version = rng.choice((1, 2))
    if version == 1:
        data = {"response_bytes_utf8": base64.b64encode(response.encode()).decode()}
    else:
        data = {"response_str": response}
    return {
        "ip": ip,
        "port": port,
        "service": rng.choice((service, service.upper(), f" {service} ")),
        "timestamp": 1_700_000_000 + rng.randrange(30_000_000),
        "data_version": version,
        "data": data,
    }


def _http_response(rng: random.Random) -> str:
    # Mostly headers plus a small page; one in ten is a full default page of a few KB.
    lines = rng.randrange(40, 120) if rng.random() < 0.1 else rng.randrange(0, 8)
    body = f"<html><head><title>{rng.choice(HTML_TITLES)}</title></head><body>\n"
    body += HTML_LINE * lines + "</body></html>\n"
    return (
        "HTTP/1.1 200 OK\r\nServer: nginx/1.18.0 (Ubuntu)\r\nContent-Type: text/html\r\n"
        f"Content-Length: {len(body.encode())}\r\nConnection: close\r\n\r\n{body}"
    )


def _spoil(rng: random.Random, message: dict) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return orjson.dumps(message)[:-7]  # truncated in flight
    if kind == 1:
        message["port"] = 70_000
    elif kind == 2:
        message["timestamp"] *= 1000  # milliseconds
    elif kind == 3:
        del message["service"]
    elif kind == 4:
        message["data_version"] = 3
    elif kind == 5:
        message["ip"] = "999.1.2.3"
    elif kind == 6:
        message["data_version"] = 1
        message["data"] = {"response_bytes_utf8": "not base64!"}
    else:
        message["data_version"] = 1
        message["data"] = {"response_bytes_utf8": base64.b64encode(b"\xff\xfe banner").decode()}
    return orjson.dumps(message)


def time_loop(parse: Callable[[bytes], object], payloads: Sequence[bytes], repeat: int) -> float:
    """Best-of-`repeat` messages per second of `parse` over `payloads`, errors swallowed."""
    best = float("inf")
    for _ in range(repeat):
        canonical_ip.cache_clear()  # every run starts cold, so runs are comparable
        start = time.perf_counter()
        for payload in payloads:
            # Not contextlib.suppress: entering a context manager per message costs more than
            # the reference parsers themselves. They raise on the invalid 2% too.
            try:  # noqa: SIM105
                parse(payload)
            except Exception:
                pass
        best = min(best, time.perf_counter() - start)
    return len(payloads) / best


def count_rejections(payloads: Sequence[bytes]) -> collections.Counter[str]:
    reasons: collections.Counter[str] = collections.Counter()
    for payload in payloads:
        try:
            decode_scan(payload)
        except Rejection as rejection:
            reasons[rejection.reason] += 1
    return reasons


def reference_parsers() -> dict[str, Callable[[bytes], object]]:
    parsers: dict[str, Callable[[bytes], object]] = {
        "json.loads": json.loads,
        "orjson.loads": orjson.loads,
    }
    try:
        import msgspec  # optional: only a reference, not a dependency
    except ImportError:
        return parsers
    parsers["msgspec.json.decode"] = msgspec.json.Decoder().decode
    return parsers


def run(messages: int, repeat: int, seed: int) -> int:
    repeating = generate_workload(messages, seed, distinct_ips=False)
    distinct = generate_workload(messages, seed, distinct_ips=True)
    for name, workload in (("repeating", repeating), ("distinct", distinct)):
        reasons = count_rejections(workload.payloads)
        if sum(reasons.values()) != workload.invalid:
            print(
                f"decode_bench: {name} mix: generated {workload.invalid} invalid payloads but "
                f"decode_scan rejected {sum(reasons.values())}: {dict(reasons)}",
                file=sys.stderr,
            )
            return 1
    mean_size = sum(map(len, repeating.payloads)) / messages
    print(
        f"decode_bench: {messages:,} messages, half v1 / half v2, "
        f"{repeating.invalid / messages:.1%} invalid, mean payload {mean_size:,.0f} B, "
        f"best of {repeat}, one thread"
    )
    decoded = time_loop(decode_scan, repeating.payloads, repeat)
    hits = canonical_ip.cache_info()
    hit_rate = hits.hits / max(1, hits.hits + hits.misses)
    print(
        f"  {'decode_scan':<22}{decoded:>12,.0f} msgs/s  "
        f"(each host on ~{PORTS_PER_HOST} ports; "
        f"IPv6 cache hit rate {hit_rate:.0%})"
    )
    decoded_cold = time_loop(decode_scan, distinct.payloads, repeat)
    print(f"  {'decode_scan':<22}{decoded_cold:>12,.0f} msgs/s  (every ip distinct: no cache hits)")
    for name, parse in reference_parsers().items():
        rate = time_loop(parse, repeating.payloads, repeat)
        print(
            f"  {name + ' only':<22}{rate:>12,.0f} msgs/s  decode_scan/this = {decoded / rate:.2f}"
        )
    reasons = count_rejections(repeating.payloads)
    print("  rejected: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))
    return 0


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=positive_int, default=200_000)
    parser.add_argument("--repeat", type=positive_int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args(argv)
    return run(options.messages, options.repeat, options.seed)


if __name__ == "__main__":
    sys.exit(main())
