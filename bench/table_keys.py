"""The keys and rows of the table-growth benchmark: one numbering, in Python and in SQL.

Owns: the map from a row number k to a realistic scan row (an IPv4 address spread over the
whole 32-bit space, one host in 16 on IPv6, two services per host drawn from the ports a
scanner finds open, a banner-sized response, a month of timestamps), written three times
over: as Python (`row_of`, for the backlog and the queries) and as the SQL expressions of
SQLite and PostgreSQL (`sqlite_select`, `postgres_select`, for the bulk load, which never
leaves the server). `tests/bench/test_table_growth.py` holds the three equal.

Never: open a database or time anything (bench/table_load.py and bench/table_growth.py do).

Uniqueness: k -> host h = k >> 1, service slot k & 1; h -> x = h * MULTIPLIER mod 2**32 is
a bijection (the multiplier is odd), so distinct hosts below 2**32 have distinct addresses
and the two slots of a host have distinct (port, service) pairs. Preloaded rows use
k < 2**32; the backlog's new keys take hosts from 2**31 up, never preloaded below 2**31
hosts (4.3 billion rows).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from contracts.records import ScanRecord

MULTIPLIER = 2_654_435_761  # odd: Knuth's multiplicative hash, a bijection mod 2**32
IPV6_EVERY = 16
START_TS = 1_700_000_000
SPREAD_S = 30 * 86_400
FIRST_SEEN_SPREAD_S = 10 * 86_400
RESPONSES_PER_PAIR = 256
NEW_HOSTS_FROM = 1 << 31  # hosts of the backlog's new keys; preloads stay below
UPDATE_TS = START_TS + 10 * SPREAD_S  # newer than every preloaded scan: updates always win

PORT_SERVICES = (
    (21, "FTP"), (22, "SSH"), (23, "TELNET"), (25, "SMTP"), (53, "DNS"), (80, "HTTP"),
    (110, "POP3"), (143, "IMAP"), (443, "HTTPS"), (445, "SMB"), (3306, "MYSQL"),
    (3389, "RDP"), (5432, "POSTGRESQL"), (6379, "REDIS"), (8080, "HTTP"), (8443, "HTTPS"),
    (27017, "MONGODB"),
)  # fmt: skip
PAIRS = len(PORT_SERVICES)
BANNERS = {
    "SSH": "SSH-2.0-OpenSSH_8.{v}p1 Ubuntu-3ubuntu0.{n}",
    "FTP": "220 ProFTPD 1.3.{n} Server (Debian) [::ffff:10.0.{n}.7]",
    "SMTP": "220 mail{n}.example.net ESMTP Postfix (Ubuntu)",
    "REDIS": "-NOAUTH Authentication required.",
    "MYSQL": "5.7.{n}-log mysql_native_password",
    "POSTGRESQL": "FATAL: no pg_hba.conf entry for host, SSL off ({n})",
}
HTTP_BANNER = (
    "HTTP/1.1 200 OK\r\nServer: nginx/1.{n}.0\r\nContent-Type: text/html\r\n"
    "Content-Length: {length}\r\n\r\n<html><head><title>Welcome {v}</title></head>{body}"
)


def responses() -> list[str]:
    """The response pool, indexed by pair * RESPONSES_PER_PAIR + n: banners as scanners see
    them (HTTP pages of 150-400 bytes, short greetings for the rest)."""
    rng = random.Random(26)
    pool = []
    for _, service in PORT_SERVICES:
        for n in range(RESPONSES_PER_PAIR):
            v = rng.randrange(10)
            if service in BANNERS:
                pool.append(BANNERS[service].format(n=n, v=v))
            elif service.startswith("HTTP"):
                body = "<p>hello</p>" * rng.randrange(2, 20)
                pool.append(HTTP_BANNER.format(n=n, v=v, length=len(body), body=body))
            else:
                pool.append(f"{service} ready {n}.{v}")
    return pool


def ip_of(h: int) -> str:
    x = (h * MULTIPLIER) % (1 << 32)
    if h % IPV6_EVERY == 0:  # canonical text: three non-zero groups, then "::", then one
        return f"2a02:{((x >> 22) & 0x3FF) + 1:x}:{((x >> 11) & 0x7FF) + 1:x}::{(x & 0x7FF) + 1:x}"
    return f"{x >> 24}.{(x >> 16) & 255}.{(x >> 8) & 255}.{x & 255}"


def pair_of(k: int) -> int:
    h = k >> 1
    first = h % PAIRS
    return first if k & 1 == 0 else (first + 1 + (h // PAIRS) % (PAIRS - 1)) % PAIRS


def response_index(k: int) -> int:
    return pair_of(k) * RESPONSES_PER_PAIR + (k * 13) % RESPONSES_PER_PAIR


def row_of(k: int, pool: list[str]) -> ScanRecord:
    """The preloaded row number k, as the writer would have stored it."""
    port, service = PORT_SERVICES[pair_of(k)]
    timestamp = START_TS + (k * 7919) % SPREAD_S
    return ScanRecord(ip_of(k >> 1), port, service, timestamp, pool[response_index(k)],
                      1 + ((k >> 3) & 1))  # fmt: skip


def first_seen_of(k: int) -> int:
    return START_TS + (k * 7919) % SPREAD_S - (k * 31) % FIRST_SEEN_SPREAD_S


def backlog(rows: int, messages: int, run: int, pool: list[str]) -> list[ScanRecord]:
    """`messages` scans in random order: half newer scans of random preloaded keys (of
    `rows`; all new keys when the table is empty), half keys never seen, spread over the
    key order. `run` numbers the backlog, so that no two runs insert the same new key."""
    rng = random.Random(run)
    updates = messages // 2 if rows else 0
    records = []
    for i in range(updates):
        k = rng.randrange(rows)
        old = row_of(k, pool)
        response = pool[(response_index(k) // RESPONSES_PER_PAIR) * RESPONSES_PER_PAIR
                        + rng.randrange(RESPONSES_PER_PAIR)]  # fmt: skip
        records.append(old._replace(timestamp=UPDATE_TS + run * 1000 + i % 1000,
                                    response=response))  # fmt: skip
    first_new = (NEW_HOSTS_FROM + run * (1 << 20)) * 2
    for k in range(first_new, first_new + messages - updates):
        records.append(row_of(k, pool)._replace(timestamp=UPDATE_TS + run * 1000))
    rng.shuffle(records)
    return records


def sample_ips(rows: int, count: int, seed: int) -> Iterator[str]:
    rng = random.Random(seed)
    for _ in range(count):
        yield ip_of(rng.randrange(max(rows, 1)) >> 1)


# The same map in SQL. `{k}` is the row number's expression; pairs(i, port, service) and
# pool(id, response) are tables the loader fills from PORT_SERVICES and `responses()`.
_X = f"((({{k}}) >> 1) * {MULTIPLIER}) % 4294967296"
_PAIR = (
    f"(CASE WHEN ({{k}}) & 1 = 0 THEN (({{k}}) >> 1) % {PAIRS}"
    f" ELSE ((({{k}}) >> 1) % {PAIRS} + 1 + ((({{k}}) >> 1) / {PAIRS}) % {PAIRS - 1}) % {PAIRS}"
    " END)"
)
_TS = f"({START_TS} + (({{k}}) * 7919) % {SPREAD_S})"
_FIRST_SEEN = f"({_TS} - (({{k}}) * 31) % {FIRST_SEEN_SPREAD_S})"
_VERSION = "(1 + ((({k}) >> 3) & 1))"
_RESPONSE_ID = f"({_PAIR} * {RESPONSES_PER_PAIR} + (({{k}}) * 13) % {RESPONSES_PER_PAIR})"


def _ip_sql(v4: str, v6: str, k: str) -> str:
    return f"(CASE WHEN (({k}) >> 1) % {IPV6_EVERY} = 0 THEN {v6} ELSE {v4} END)"


def sqlite_select(k: str) -> str:
    """SELECT list (ip, port, service, last_scanned, response, data_version, first_seen)
    of row number `k`, in SQLite's SQL, from `pairs` and `pool` joined by the caller."""
    x = _X.format(k=k)
    v4 = f"printf('%d.%d.%d.%d', {x} >> 24, ({x} >> 16) & 255, ({x} >> 8) & 255, {x} & 255)"
    v6 = (f"printf('2a02:%x:%x::%x', (({x} >> 22) & 1023) + 1, (({x} >> 11) & 2047) + 1,"
          f" ({x} & 2047) + 1)")  # fmt: skip
    return _select(_ip_sql(v4, v6, k), k)


def postgres_select(k: str) -> str:
    """As `sqlite_select`, in PostgreSQL's SQL (k a bigint)."""
    return _select(_postgres_ip(k), k)


def _postgres_ip(k: str) -> str:
    x = _X.format(k=k)
    v4 = f"concat_ws('.', {x} >> 24, ({x} >> 16) & 255, ({x} >> 8) & 255, {x} & 255)"
    v6 = (f"concat('2a02:', to_hex((({x} >> 22) & 1023) + 1), ':', to_hex((({x} >> 11) & 2047)"
          f" + 1), '::', to_hex(({x} & 2047) + 1))")  # fmt: skip
    return _ip_sql(v4, v6, k)


def _select(ip: str, k: str) -> str:
    return (
        f"{_key(ip, k)}, {_TS.format(k=k)},"
        f" (SELECT response FROM pool WHERE id = {_RESPONSE_ID.format(k=k)}),"
        f" {_VERSION.format(k=k)}, {_FIRST_SEEN.format(k=k)}"
    )


def _key(ip: str, k: str) -> str:
    pair = _PAIR.format(k=k)
    return (f"{ip}, (SELECT port FROM pairs WHERE i = {pair}),"
            f" (SELECT service FROM pairs WHERE i = {pair})")  # fmt: skip


def postgres_key(k: str) -> str:
    """ip, port, service of row number `k`, in PostgreSQL's SQL (for updates by key)."""
    return _key(_postgres_ip(k), k)


def postgres_response_id(k: str, shift: str) -> str:
    """Another response of the same service as row `k`'s: the pool id `shift` places on."""
    return (f"({_PAIR.format(k=k)} * {RESPONSES_PER_PAIR}"
            f" + (({k}) * 13 + {shift}) % {RESPONSES_PER_PAIR})")  # fmt: skip
