"""Benchmark the PostgreSQL store against two raw psycopg paths, with 1, 2 and 3 writers.

Owns: one throw-away PostgreSQL cluster (`testkit.postgres_cluster`), the
same deterministic records as `bench/store_bench.py`, and three ways of writing them, each
into a fresh database with miniscan's tables, one transaction per batch, the server's
defaults (synchronous_commit on):

  copy      the plain fast path: binary COPY into a temporary table, then one
            INSERT ... SELECT ... ON CONFLICT DO UPDATE (newest wins), commit;
  pipeline  `executemany` of a plain INSERT ... ON CONFLICT in pipeline mode, commit;
  store     `PostgresStore.write_batch` given `ScanRecord`s: in-memory reduction, the full
            newest-wins upsert in key order, new-key counting, typed errors and retries.

Each runs with 1, 2 and 3 concurrent writer processes over disjoint slices of the records
(their keys overlap, as replicas' do). It prints rows/s and store / the faster raw path
(issue 14: at least 0.8) for each writer count. A benchmark, not a timed test.

    .venv/bin/python bench/store_bench_postgres.py [--records 60000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psycopg  # noqa: E402
from store_bench import batched, generate_records  # noqa: E402

from store.postgres.writer import PostgresStore  # noqa: E402
from testkit.postgres_cluster import start_cluster  # noqa: E402

RAW_COPY_DDL = """
CREATE TEMPORARY TABLE IF NOT EXISTS incoming (
    ip text COLLATE "C", port int, service text COLLATE "C", last_scanned bigint,
    response bytea, data_version int, first_seen bigint
) ON COMMIT DELETE ROWS
"""
RAW_UPSERT = """
ON CONFLICT (ip, port, service) DO UPDATE SET
    last_scanned = greatest(scans.last_scanned, excluded.last_scanned),
    response = CASE WHEN (excluded.last_scanned, excluded.response, excluded.data_version)
        > (scans.last_scanned, scans.response, scans.data_version)
        THEN excluded.response ELSE scans.response END,
    data_version = CASE WHEN (excluded.last_scanned, excluded.response, excluded.data_version)
        > (scans.last_scanned, scans.response, scans.data_version)
        THEN excluded.data_version ELSE scans.data_version END,
    first_seen = least(scans.first_seen, excluded.first_seen)
"""
COLUMNS = "ip, port, service, last_scanned, response, data_version, first_seen"


def rows_of(records) -> list[tuple]:
    """Plain tuples, one per key per batch (ON CONFLICT cannot touch a row twice)."""
    newest: dict[tuple, tuple] = {}
    for r in records:
        row = (r.ip, r.port, r.service, r.timestamp, r.response.encode(), r.data_version,
               r.timestamp)  # fmt: skip
        key = row[:3]
        if key not in newest or row[3:6] > newest[key][3:6]:
            newest[key] = row
    return sorted(newest.values())


def write_copy(url: str, batches) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(RAW_COPY_DDL)
        conn.commit()
        for batch in batches:
            with conn.cursor() as cur:
                with cur.copy(f"COPY incoming ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["text", "int4", "text", "int8", "bytea", "int4", "int8"])
                    for row in rows_of(batch):
                        copy.write_row(row)
                cur.execute(f"INSERT INTO scans ({COLUMNS}) SELECT {COLUMNS} FROM incoming"
                            f" ORDER BY ip, port, service {RAW_UPSERT}")  # fmt: skip
            conn.commit()


def write_pipeline(url: str, batches) -> None:
    statement = f"INSERT INTO scans ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s) {RAW_UPSERT}"
    with psycopg.connect(url) as conn:
        for batch in batches:
            with conn.pipeline(), conn.cursor() as cur:
                cur.executemany(statement, rows_of(batch))
            conn.commit()


def write_store(url: str, batches) -> None:
    with PostgresStore.open(url) as store:
        for batch in batches:
            store.write_batch(batch)


PATHS = {"copy": write_copy, "pipeline": write_pipeline, "store": write_store}


def worker(path: str, url: str, records, batch: int, start, done) -> None:
    batches = batched(records, batch)
    start.wait()
    PATHS[path](url, batches)
    done.put(len(records))


def run(cluster, path: str, writers: int, records, batch: int) -> float:
    """rows/s of `writers` processes writing `records` (split between them) by `path`."""
    url = cluster.create_database("bench")
    PostgresStore.open(url).close()  # miniscan's tables, so that every path writes the same
    context = multiprocessing.get_context("spawn")
    start, done = context.Event(), context.Queue()
    share = len(records) // writers
    processes = [
        context.Process(target=worker, args=(path, url, records[i * share:(i + 1) * share],
                                             batch, start, done))
        for i in range(writers)
    ]  # fmt: skip
    for process in processes:
        process.start()
    time.sleep(1.0)  # let every writer import and connect before the clock starts
    started = time.perf_counter()
    start.set()
    written = sum(done.get(timeout=600) for _ in processes)
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join()
    return written / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    records = generate_records(args.records, seed=1)
    cluster = start_cluster()
    print(f"PostgreSQL {cluster.bindir.parent.name} on 127.0.0.1, {args.records:,} records, "
          f"batches of {args.batch}, best of {args.rounds} rounds", file=sys.stderr)  # fmt: skip
    results: dict[tuple[str, int], float] = {}
    try:
        for writers in (1, 2, 3):
            for _ in range(args.rounds):
                for path in PATHS:  # interleaved, so load from elsewhere hits all alike
                    rate = run(cluster, path, writers, records, args.batch)
                    results[path, writers] = max(results.get((path, writers), 0.0), rate)
    finally:
        cluster.stop()
    print("| writers | copy rows/s | pipeline rows/s | store rows/s | store / faster raw |")
    print("|---|---|---|---|---|")
    worst = 1e9
    for writers in (1, 2, 3):
        raw = max(results["copy", writers], results["pipeline", writers])
        ratio = results["store", writers] / raw
        worst = min(worst, ratio)
        print(f"| {writers} | {results['copy', writers]:,.0f} | {results['pipeline', writers]:,.0f}"
              f" | {results['store', writers]:,.0f} | {ratio:.2f} |")  # fmt: skip
    print(f"\nworst store / faster raw: {worst:.2f} (issue 14 target: at least 0.80)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
