"""Benchmark `store.sqlite.writer.ScanStore.write_batch` against raw apsw and the naive way, in
one run.

Owns: a small deterministic generator of scan records over a realistic key space (hosts of
one /16, the ports a scanner finds open, banner-sized responses, a day of timestamps, so
that some keys repeat), and three timed writers on the same records, each into a fresh
database file with the same schema and connection settings (WAL, `synchronous=FULL`):

  raw    apsw `executemany` of a plain upsert, one transaction per batch, on tuples built
         beforehand: the reference the issue measured (~78,000 rows/s on this machine);
  store  `ScanStore.write_batch` per batch, given `ScanRecord`s: in-memory reduction, the
         full newest-wins upsert, new-key counting, typed errors;
  naive  one transaction (so one fsync) per row, on the first `--naive-records` records.

raw and store run side by side, batch by batch, into two files, so that a burst of load
from other processes hits both alike. It prints rows/s (best and median of `--rounds`),
then store/raw as the median of the rounds' ratios (issue: at least 0.8) and store/naive
(issue: at least 10). `--check` exits 1 when
either bound is missed. A benchmark, not a timed test: the figures go to bench/RESULTS.md.

Never: touch Pub/Sub, or write anywhere but a temporary folder (under `--dir`, by default
`data/`, the file system the real database lives on: fsync cost is the point).

    .venv/bin/python bench/store_bench.py [--records 200000] [--batch 1000] [--rounds 3]
        [--naive-records 50000] [--seed 1] [--dir data] [--quick] [--check]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import apsw

from contracts.records import ScanRecord
from store.sqlite import schema
from store.sqlite.connection import apply_writer_settings
from store.sqlite.writer import ScanStore

MIN_STORE_TO_RAW = 0.8
MIN_STORE_TO_NAIVE = 10.0
DAY_S = 86_400
START_TS = 1_714_521_600  # 2024-05-01T00:00Z

PORT_SERVICES = (
    (21, "FTP"),
    (22, "SSH"),
    (23, "TELNET"),
    (25, "SMTP"),
    (53, "DNS"),
    (80, "HTTP"),
    (110, "POP3"),
    (143, "IMAP"),
    (443, "HTTPS"),
    (445, "SMB"),
    (3306, "MYSQL"),
    (3389, "RDP"),
    (5432, "POSTGRESQL"),
    (6379, "REDIS"),
    (8080, "HTTP"),
    (8443, "HTTPS"),
    (9200, "HTTP"),
    (27017, "MONGODB"),
)
BANNERS = {
    "SSH": "SSH-2.0-OpenSSH_{v}p1 Ubuntu-3ubuntu0.{n}",
    "FTP": "220 ProFTPD 1.3.{n} Server (Debian) [::ffff:10.0.{n}.7]",
    "SMTP": "220 mail{n}.example.net ESMTP Postfix (Ubuntu)",
    "REDIS": "-NOAUTH Authentication required.",
    "MYSQL": "5.7.{n}-log\x00mysql_native_password",
}
HTTP_BANNER = (
    "HTTP/1.1 200 OK\r\nServer: nginx/1.{n}.0\r\nContent-Type: text/html\r\n"
    "Content-Length: {length}\r\n\r\n<html><head><title>Welcome {v}</title></head>{body}"
)

def plain_upsert_row(r) -> tuple:
    """A record as PLAIN_UPSERT's parameters (first_seen is the scan's own time)."""
    return (r.ip, r.port, r.service, r.timestamp, r.response, r.data_version, r.timestamp)


PLAIN_UPSERT = """
INSERT INTO scans (ip, port, service, last_scanned, response, data_version, first_seen)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (ip, port, service) DO UPDATE SET
    last_scanned = excluded.last_scanned, response = excluded.response,
    data_version = excluded.data_version
WHERE excluded.last_scanned > scans.last_scanned
"""


def generate_records(count: int, seed: int) -> list[ScanRecord]:
    """`count` scans of hosts in 10.20.0.0/16 on common ports (~1.2M possible keys)."""
    rng = random.Random(seed)
    records = []
    for _ in range(count):
        port, service = rng.choice(PORT_SERVICES)
        ip = f"10.20.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        records.append(
            ScanRecord(
                ip,
                port,
                service,
                START_TS + rng.randrange(DAY_S),
                _response(rng, service),
                rng.choice((1, 2)),
            )
        )
    return records


def _response(rng: random.Random, service: str) -> str:
    n, v = rng.randrange(30), rng.randrange(10)
    if service in BANNERS:
        return BANNERS[service].format(n=n, v=v)
    if service.startswith("HTTP"):
        body = "<p>hello</p>" * rng.randrange(2, 20)
        return HTTP_BANNER.format(n=n, v=v, length=len(body), body=body)
    return f"{service} ready {n}.{v}"


def batched(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def fresh_connection(path: str) -> apsw.Connection:
    """The store's schema and the store's connection settings, without the store's code."""
    conn = apsw.Connection(path)
    schema.ensure_current(conn, path)
    apply_writer_settings(conn, "FULL")
    return conn


def write_raw_batch(conn: apsw.Connection, batch: Sequence[tuple]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(PLAIN_UPSERT, batch)
    conn.execute("COMMIT")


def race(folder: str, raw_batches: list[Sequence[tuple]],
         store_batches: list[Sequence[ScanRecord]]) -> tuple[float, float]:  # fmt: skip
    """Seconds spent by raw apsw and by the store writing the same batches into two fresh
    files, interleaved batch by batch (alternating who goes first), so that load from
    elsewhere on the machine hits both alike."""
    raw_path, store_path = os.path.join(folder, "raw.db"), os.path.join(folder, "store.db")
    raw = fresh_connection(raw_path)
    store = ScanStore.open(store_path, synchronous="FULL")
    spent = {"raw": 0.0, "store": 0.0}
    for number, (raw_batch, store_batch) in enumerate(zip(raw_batches, store_batches, strict=True)):
        steps = [
            ("raw", write_raw_batch, (raw, raw_batch)),
            ("store", store.write_batch, (store_batch,)),
        ]
        for name, write, write_args in steps[:: 1 if number % 2 else -1]:
            started = time.perf_counter()
            write(*write_args)
            spent[name] += time.perf_counter() - started
    raw.close()
    store.close()
    remove_database(raw_path)
    remove_database(store_path)
    return spent["raw"], spent["store"]


def time_naive(folder: str, rows: Sequence[tuple]) -> float:
    path = os.path.join(folder, "naive.db")
    conn = fresh_connection(path)
    started = time.perf_counter()
    for row in rows:
        conn.execute(PLAIN_UPSERT, row)  # autocommit: one transaction, one fsync, per row
    elapsed = time.perf_counter() - started
    conn.close()
    remove_database(path)
    return elapsed


def remove_database(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, SQLite {apsw.sqlite_lib_version()}, "
        f"apsw {apsw.apsw_version()}"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of raw/store")
    parser.add_argument(
        "--naive-records",
        type=int,
        default=50_000,
        help="rows for the one-transaction-per-row run (0: all)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default="data", help="where the temporary databases go")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, to check that the script runs (figures meaningless)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 unless store/raw >= {MIN_STORE_TO_RAW} "
        f"and store/naive >= {MIN_STORE_TO_NAIVE}",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.batch, args.rounds, args.naive_records = 4000, 500, 1, 200
    if min(args.records, args.batch, args.rounds) < 1 or args.naive_records < 0:
        parser.error("--records, --batch and --rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    records = generate_records(args.records, args.seed)
    tuples = [plain_upsert_row(r) for r in records]
    naive_rows = tuples[: args.naive_records or len(tuples)]
    keys = len({r.key for r in records})
    print(f"store_bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}")
    print(
        f"{args.records} records ({keys} distinct keys), batches of {args.batch}, "
        f"synchronous=FULL, WAL, {args.rounds} round(s)"
    )
    os.makedirs(args.dir, exist_ok=True)
    raw_rates, store_rates, ratios = [], [], []
    with tempfile.TemporaryDirectory(prefix="store_bench-", dir=args.dir) as folder:
        raw_batches, store_batches = batched(tuples, args.batch), batched(records, args.batch)
        for _ in range(args.rounds):
            raw_s, store_s = race(folder, raw_batches, store_batches)
            raw_rates.append(len(tuples) / raw_s)
            store_rates.append(len(records) / store_s)
            ratios.append(raw_s / store_s)
        naive_rate = len(naive_rows) / time_naive(folder, naive_rows)
    for label, rates in (
        ("raw apsw executemany", raw_rates),
        ("ScanStore.write_batch", store_rates),
    ):
        print(f"  {label:<34} best {max(rates):>9,.0f} rows/s   "
              f"median {statistics.median(rates):>9,.0f} rows/s")  # fmt: skip
    print(f"  {f'one txn per row ({len(naive_rows)} rows)':<34}      {naive_rate:>9,.0f} rows/s")
    to_raw = statistics.median(ratios)
    to_naive = statistics.median(store_rates) / naive_rate
    rounds = ", ".join(f"{r:.2f}" for r in ratios)
    print(
        f"  store/raw   {to_raw:6.2f}  median of rounds [{rounds}] (must be >= {MIN_STORE_TO_RAW})"
    )
    print(f"  store/naive {to_naive:6.1f}x (must be >= {MIN_STORE_TO_NAIVE:.0f}x)")
    if args.check and (to_raw < MIN_STORE_TO_RAW or to_naive < MIN_STORE_TO_NAIVE):
        print("store_bench: bounds missed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
