"""What a partitioned `scans` costs the PostgreSQL writer: two statements per batch instead of
the one upsert (store.postgres.upsert), measured against the plain table in the same run.

Owns: one throw-away PostgreSQL cluster (`testkit.postgres_cluster`), the deterministic
records of `bench/store_bench.py`, and two passes over them through `PostgresStore` (one
writer, batches of `--batch`, synchronous_commit on): `new keys` writes them into empty
tables, `newer scans` writes the same keys again one day later, so every row is updated.
Each round writes a fresh plain database and a fresh one partitioned by `miniscan
partition` (`--partitions`), interleaved, so load from elsewhere hits both alike; it prints
the best rows/s of each and partitioned / plain. A benchmark, not a timed test.

    .venv/bin/python bench/partition_cost.py [--records 50000] [--batch 1000] [--partitions 16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from store_bench import batched, generate_records  # noqa: E402

from store.postgres.partition import partition_database  # noqa: E402
from store.postgres.writer import PostgresStore  # noqa: E402
from testkit.postgres_cluster import start_cluster  # noqa: E402

DAY_S = 86_400
LAYOUTS = ("plain", "partitioned")
PASSES = ("new keys", "newer scans")


def write_rate(url: str, batches) -> float:
    """rows/s of one writer committing `batches`, each in its own transaction."""
    with PostgresStore.open(url) as store:
        started = time.perf_counter()
        for batch in batches:
            store.write_batch(batch)
        elapsed = time.perf_counter() - started
    return sum(len(batch) for batch in batches) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    records = generate_records(args.records, seed=1)
    newer = [r._replace(timestamp=r.timestamp + DAY_S) for r in records]
    passes = {PASSES[0]: batched(records, args.batch), PASSES[1]: batched(newer, args.batch)}
    cluster = start_cluster()
    print(f"PostgreSQL {cluster.bindir.parent.name} on 127.0.0.1, {args.records:,} records,"
          f" batches of {args.batch}, {args.partitions} partitions, best of {args.rounds}"
          " rounds", file=sys.stderr)  # fmt: skip
    best: dict[tuple[str, str], float] = {}
    try:
        for _ in range(args.rounds):
            for layout in LAYOUTS:
                url = cluster.create_database("bench")
                PostgresStore.open(url).close()
                if layout == "partitioned":
                    partition_database(url, args.partitions)
                for name, batches in passes.items():
                    rate = write_rate(url, batches)
                    best[layout, name] = max(best.get((layout, name), 0.0), rate)
    finally:
        cluster.stop()
    print("| pass | plain rows/s | partitioned rows/s | partitioned / plain |")
    print("|---|---|---|---|")
    for name in PASSES:
        plain, partitioned = best["plain", name], best["partitioned", name]
        print(f"| {name} | {plain:,.0f} | {partitioned:,.0f} | {partitioned / plain:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
