"""How much of the drain's slowdown with table size is the B-tree itself, with no disk at all.

Owns: the table-growth benchmark's SQLite drain (bench/table_keys.py's rows and backlogs,
the plain upsert of bench/store_bench.py, batches of 1,000) on a file in RAM (/dev/shm),
with synchronous OFF and a page cache larger than the file: no fsync, no read from disk, no
checkpoint wait. What is left is the CPU and memory cost of finding and changing a key in a
B-tree of N rows. It measures a near-empty table and the given sizes, for the key layouts
and page sizes asked (`--layouts rowid,without-rowid`, `--page-sizes 4096,1024`), and prints
msgs/s and each size's ratio to the near-empty table of the same layout and page size.

If the ratio here matches bench/table_growth.py's durable one at the same size, the disk is
not what slows the drain at that size. (For PostgreSQL the same question is asked with
bench/table_growth.py's --postgres-setting: fsync, full_page_writes and synchronous_commit
off, shared_buffers larger than the table.)

Never: run in `make test` (tests/bench/test_btree_in_memory.py runs it tiny), or leave its
file in RAM.

    .venv/bin/python bench/btree_in_memory.py [--sizes 3M,10M] [--layouts rowid]
        [--page-sizes 4096] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import apsw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import table_keys  # noqa: E402
import table_load  # noqa: E402
from store_bench import PLAIN_UPSERT, plain_upsert_row  # noqa: E402
from table_growth import parse_count  # noqa: E402

from store.sqlite.schema import SCANS_DDL  # noqa: E402

# bench/table_growth.py's reference too: an empty table has no keys to update.
NEAR_EMPTY_ROWS = 40_000
BACKLOG = 40_000
BATCH = 1_000
LAYOUTS = {"rowid": "", "without-rowid": " WITHOUT ROWID"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="3M,10M")
    parser.add_argument("--layouts", default="rowid")
    parser.add_argument("--page-sizes", default="4096")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backlog", type=int, default=BACKLOG)
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    args = parser.parse_args(argv)
    args.sizes = [parse_count(s) for s in args.sizes.split(",")]
    args.layouts = args.layouts.split(",")
    unknown = set(args.layouts) - set(LAYOUTS)
    if unknown:
        parser.error(f"unknown layout(s) {', '.join(sorted(unknown))}; known: {', '.join(LAYOUTS)}")
    args.page_sizes = [int(p) for p in args.page_sizes.split(",")]
    return args


def create(path: str, layout: str, page_size: int) -> apsw.Connection:
    conn = apsw.Connection(path)
    conn.pragma("page_size", page_size)
    conn.pragma("journal_mode", "off")  # for the loads; WAL, as the store runs, for drains
    conn.pragma("synchronous", "off")
    conn.pragma("cache_size", -table_load.LOADER_CACHE_KIB)
    conn.execute(SCANS_DDL.rstrip() + LAYOUTS[layout])
    table_load.sqlite_helpers(conn)
    return conn


def grow(conn: apsw.Connection, first: int, last: int) -> None:
    conn.pragma("journal_mode", "off")
    for _ in table_load.insert_sqlite_rows(conn, first, last):
        pass
    conn.pragma("journal_mode", "wal")


def drain_rate(conn: apsw.Connection, rows: int, run: int, backlog: int = BACKLOG) -> float:
    """msgs/s of one backlog (half updates of random keys, half new keys) into `rows` rows."""
    records = table_keys.backlog(rows, backlog, run, table_keys.responses())
    tuples = [plain_upsert_row(r) for r in records]
    started = time.perf_counter()
    for low in range(0, len(tuples), BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(PLAIN_UPSERT, tuples[low : low + BATCH])
        conn.execute("COMMIT")
    return len(tuples) / (time.perf_counter() - started)


def measure(layout: str, page_size: int, args: argparse.Namespace, folder: str) -> list[dict]:
    path = os.path.join(folder, "btree.db")
    conn = create(path, layout, page_size)
    results, loaded, run, reference = [], 0, 0, None
    try:
        for rows in [NEAR_EMPTY_ROWS, *args.sizes]:
            grow(conn, loaded, rows)
            loaded = rows
            rates = []
            for _ in range(args.rounds):
                run += 1  # a new numbering per backlog: no two insert the same new key
                rates.append(drain_rate(conn, rows, run, args.backlog))
            rate = statistics.median(rates)
            reference = reference or rate
            size = os.path.getsize(path)  # the WAL is the last batches', not the table's
            results.append({"layout": layout, "page_size": page_size, "rows": rows,
                            "msgs_per_s": rate, "ratio": rate / reference,
                            "bytes_per_row": size / rows})  # fmt: skip
            print(f"{layout:14} page {page_size:5}  {rows:>11,} rows: {rate:9,.0f} msgs/s "
                  f"({rate / reference:.2f}x)  {size / rows:5.0f} B/row  "
                  f"[{', '.join(f'{r:,.0f}' for r in rates)}]", flush=True)  # fmt: skip
    finally:
        conn.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"B-tree in RAM: {args.dir}, synchronous OFF, cache larger than the file; "
          f"{args.rounds} backlogs of {args.backlog:,} in batches of {BATCH:,}",
          flush=True)  # fmt: skip
    for layout in args.layouts:
        for page_size in args.page_sizes:
            with tempfile.TemporaryDirectory(dir=args.dir, prefix="miniscan-btree-") as folder:
                measure(layout, page_size, args, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
