"""How the store holds up as its table grows: 0, 1M, 10M and 100M rows, on SQLite and PostgreSQL.

Owns: the run. For each store it creates miniscan's tables with the store's own open, then
for each size (ascending, on the same database) bulk-loads the rows up to that size
(bench/table_load.py, rows numbered by bench/table_keys.py) and measures, `--rounds` times:

  writer  the store's writer (`store.backend.open_store(...).write_batch`, the code the
          writer process runs), in a fresh child process (bench/table_drain.py), draining
          `--backlog` scans in batches of `--batch`: half newer scans of random preloaded
          keys, half new keys at random places in the key order; its open time, msgs/s and
          peak RSS;
  raw     the bare reference on the same table, same batch size, in a child too: apsw's
          `executemany` of a plain upsert (SQLite), binary COPY + one INSERT ... ON CONFLICT
          (PostgreSQL); bench/store_bench*.py define both;

then the size on disk and bytes a row, `miniscan stats` and `miniscan query --ip` as a user
runs them (wall time of the command), and the p50/p99 of in-process `find_scans(ip=...)`.
For PostgreSQL it then loads `--bloat-rows` rows into a second database and updates every
row `--bloat-rounds` times (autovacuum running as configured), reporting the size before and
after. The figures go to `--json` and a plot; bench/table_growth_report.py prints them and
the verdicts of issue 26. `--memory-cap 512M` asks what a table larger than the machine's
memory costs: the drains (and the whole PostgreSQL server while they run) are held in a
memory cgroup of that size, the page cache emptied first (bench/memory_cap.py; root only).

Never: run in `make test` at full size (tests/bench/test_table_growth.py runs it tiny), touch
Pub/Sub, or keep its databases unless `--keep`.

    .venv/bin/python bench/table_growth.py [--stores sqlite,postgres] [--sizes 0,1M,10M,100M]
        [--backlog 40000] [--batch 1000] [--rounds 3] [--bloat-rows 10M] [--dir data/growth]
        [--memory-cap 512M]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import memory_cap  # noqa: E402
import table_growth_report as report  # noqa: E402
import table_keys  # noqa: E402
import table_load  # noqa: E402
from table_drain import run_child  # noqa: E402

# The server as a production user would run it on this machine: durable (fsync on), a
# quarter of a small box's memory as shared buffers, room for bulk loads between checkpoints.
POSTGRES_SETTINGS = ("shared_buffers=1GB", "max_wal_size=8GB", "checkpoint_timeout=15min")
QUERY_SAMPLES = 200


def parse_count(text: str) -> int:
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("KM")) * scale)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stores", default="sqlite,postgres")
    p.add_argument("--sizes", default="0,1M,10M,100M")
    p.add_argument("--backlog", type=int, default=40_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--bloat-rows", default="10M", help="0 skips the PostgreSQL bloat rounds")
    p.add_argument("--bloat-rounds", type=int, default=3)
    p.add_argument("--fillfactor", type=int,
                   help="scans' fillfactor in the bloat database (default: the schema's, 90)")
    p.add_argument("--vacuum-scale-factor", type=float,
                   help="scans' autovacuum_vacuum_scale_factor there (default: the schema's)")
    p.add_argument("--dir", default="data/growth")
    p.add_argument("--json", default="bench/plots/table_growth.json")
    p.add_argument("--plot", help="default: --json's path ending in .png, so a run with its "
                   "own --json never overwrites the recorded plot")
    p.add_argument("--keep", action="store_true",
                   help="keep the databases (and the PostgreSQL server running) at the end")
    p.add_argument("--sqlite-path", help="grow this file (default: a new one in --dir)")
    p.add_argument("--postgres-url", help="grow miniscan's tables here (default: a new server)")
    p.add_argument("--postgres-setting", action="append", default=[], metavar="NAME=VALUE",
                   help="a server setting for the new server, after the defaults (repeatable)")
    p.add_argument("--loaded", default="0", help="the given database already holds rows"
                   " 0..N-1 of the numbering (a former run's --keep); smaller sizes are skipped")
    p.add_argument("--memory-cap", default="0", metavar="SIZE",
                   help="run the drains with this much memory for the table's cache (a memory"
                   " cgroup around each SQLite drain child, around the whole PostgreSQL"
                   " server while the drains run), the page cache emptied before each size:"
                   " a table larger than the machine's memory (root only; e.g. 512M)")
    p.add_argument("--warmup", type=int, default=0, metavar="N",
                   help="N uncounted raw drains before each size's measured ones (with"
                   " --memory-cap: the cache starts empty; at most 50)")
    p.add_argument("--check", action="store_true", help="exit 1 when a verdict is missed")
    args = p.parse_args(argv)
    args.stores = [s for s in args.stores.split(",") if s]
    args.sizes = sorted(parse_count(s) for s in args.sizes.split(",") if s not in ("", "none"))
    args.bloat_rows = parse_count(args.bloat_rows)
    args.loaded = parse_count(args.loaded)
    args.memory_cap = memory_cap.parse_bytes(args.memory_cap)
    args.cap = None  # the MemoryCap, once made
    args.measured = []  # the sizes measured so far: numbers each backlog apart
    if any(s not in ("sqlite", "postgres") for s in args.stores):
        p.error("--stores takes sqlite and/or postgres")
    if not 0 <= args.warmup <= 50 or not 1 <= args.rounds <= 25:
        p.error("--warmup takes 0 to 50 and --rounds 1 to 25 (they number the backlogs)")
    if args.memory_cap and args.postgres_url and "postgres" in args.stores:
        p.error("--memory-cap needs the server this run starts, not --postgres-url")
    return args


def command_wall_s(args: Sequence[str], target: str) -> float:
    """Wall time of a miniscan command as a user runs it (interpreter start included)."""
    miniscan = str(Path(sys.executable).parent / "miniscan")
    env = {**os.environ, "MINISCAN_DB": target}  # a URL never goes on a command line
    started = time.perf_counter()
    subprocess.run([miniscan, *args, "--format", "json"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    return time.perf_counter() - started


def query_times_ms(target: str, rows: int) -> list[float]:
    from store.reader import open_store_reader

    times = []
    with open_store_reader(target) as reader:
        for ip in table_keys.sample_ips(rows, QUERY_SAMPLES, seed=rows):
            started = time.perf_counter()
            found = list(reader.find_scans(ip=ip))
            times.append((time.perf_counter() - started) * 1000)
            if rows and not found:
                raise AssertionError(f"query --ip {ip} found nothing in {rows:,} rows")
    return times


def stats_in_process_s(target: str) -> float:
    from store.reader import open_store_reader

    with open_store_reader(target) as reader:
        started = time.perf_counter()
        reader.read_stats()
        return time.perf_counter() - started


def measure(store: str, target: str, rows: int, args: argparse.Namespace,
            size_of: Callable[[], dict]) -> dict[str, Any]:  # fmt: skip
    runs: dict[str, list[dict]] = {"writer": [], "raw": []}
    if args.cap and store == "postgres":
        # Only for the drains: a capped bulk load (the key's rebuild writes GiBs) is killed.
        args.cap.confine_postgres(args.postgres_data_dir)
    if args.cap:
        memory_cap.drop_page_cache()  # what the load left cached would serve reads uncapped
    warmup = []
    try:
        for i in range(args.warmup):  # raw drains, not counted: they fill the cache (the cap)
            run_id = 50 + i + 100 * (1 + len(args.measured))  # apart from the measured ones
            warmup.append(run_child("raw", target, rows, args, run_id)["msgs_per_s"])
        for _ in range(args.rounds):
            for kind in ("writer", "raw"):
                # Unique per backlog, so that no two insert the same new key (table_keys).
                run_id = len(runs["writer"]) + len(runs["raw"]) + 100 * (1 + len(args.measured))
                runs[kind].append(run_child(kind, target, rows, args, run_id))
    finally:
        if args.cap:
            args.cap.release()
    query_ms = sorted(query_times_ms(target, rows))
    stats_s = [command_wall_s(["stats"], target) for _ in range(3)]
    ip = next(table_keys.sample_ips(rows, 1, seed=7))
    result = {
        "store": store, "rows": rows,
        "writer_msgs_per_s": statistics.median(r["msgs_per_s"] for r in runs["writer"]),
        "raw_msgs_per_s": statistics.median(r["msgs_per_s"] for r in runs["raw"]),
        # In order: with --memory-cap the first drains start from an empty page cache.
        "writer_runs_msgs_per_s": [r["msgs_per_s"] for r in runs["writer"]],
        "warmup_msgs_per_s": warmup,
        "writer_open_s": max(r["open_s"] for r in runs["writer"]),
        # Below 1 (SQLite): the drain waits on the disk (fsync, reads), not on the CPU.
        "writer_cpu_share": statistics.median(r["cpu_share"] for r in runs["writer"]),
        "writer_peak_mib": max(r["peak_kib"] for r in runs["writer"]) / 1024,
        "stats_s": statistics.median(stats_s),
        "stats_in_process_s": stats_in_process_s(target),
        "query_cli_s": command_wall_s(["query", "--ip", ip], target),
        "query_p50_ms": query_ms[len(query_ms) // 2],
        "query_p99_ms": query_ms[int(len(query_ms) * 0.99) - 1],
        **size_of(),
    }  # fmt: skip
    result["bytes_per_row"] = result["disk_bytes"] / rows
    args.measured.append(rows)
    return result


def sqlite_sizes(path: str) -> Callable[[], dict]:
    def size_of() -> dict:
        files = [path, path + "-wal"]
        return {"disk_bytes": sum(os.path.getsize(f) for f in files if os.path.exists(f))}

    return size_of


def postgres_sizes(url: str) -> Callable[[], dict]:
    import psycopg

    def size_of() -> dict:
        with psycopg.connect(url) as conn:
            table, indexes = conn.execute(
                "SELECT pg_table_size('scans'), pg_indexes_size('scans')").fetchone()
        return {"disk_bytes": table + indexes, "table_bytes": table, "index_bytes": indexes}

    return size_of


def grow(store: str, target: str, args: argparse.Namespace, say: Callable[[str], None],
         size_of: Callable[[], dict]) -> list[dict]:  # fmt: skip
    load = table_load.load_sqlite if store == "sqlite" else table_load.load_postgres
    results, loaded = [], args.loaded
    for size in args.sizes:
        if max(size, args.backlog) < loaded:
            say(f"{store}: {size:,} rows skipped: the table already holds {loaded:,}")
            continue
        # An empty table has no keys for the backlog's updates to hit: the reference is a
        # near-empty one of --backlog rows (a few MiB, always cached), said so in the report.
        rows = max(size, args.backlog)
        seconds = 0.0
        if rows > loaded:
            seconds = load(target, loaded, rows, say)
            say(f"{store}: {rows - loaded:,} rows loaded in {seconds:.0f} s"
                f" ({(rows - loaded) / seconds:,.0f} rows/s)")  # fmt: skip
            loaded = rows
        result = measure(store, target, rows, args, size_of)
        result["size"] = size
        result["load_s"] = seconds
        results.append(result)
        say(report.one_line(result))
    return results


def bloat(growth_url: str, args: argparse.Namespace, say: Callable[[str], None]) -> dict:
    """Load --bloat-rows rows into a database of their own beside the growth one (dropped
    first if a former run left it) and update every row --bloat-rounds times."""
    import psycopg

    from store.postgres.writer import PostgresStore

    url = growth_url.rsplit("/", 1)[0] + "/miniscan_bloat"
    with psycopg.connect(growth_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS miniscan_bloat")
        conn.execute("CREATE DATABASE miniscan_bloat")
    PostgresStore.open(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        if args.fillfactor is not None:
            conn.execute(f"ALTER TABLE scans SET (fillfactor = {args.fillfactor})")
        if args.vacuum_scale_factor is not None:
            conn.execute("ALTER TABLE scans SET (autovacuum_vacuum_scale_factor ="
                         f" {args.vacuum_scale_factor})")  # fmt: skip
        options = conn.execute("SELECT reloptions FROM pg_class WHERE relname = 'scans'"
                               " AND relnamespace = current_schema()::regnamespace").fetchone()[0]
    table_load.load_postgres(url, 0, args.bloat_rows, say)
    before = postgres_sizes(url)()
    seconds = table_load.update_rounds(url, args.bloat_rows, args.bloat_rounds, 5000, say)
    after = postgres_sizes(url)()
    return {"rows": args.bloat_rows, "rounds": args.bloat_rounds, "reloptions": options or [],
            "seconds": seconds, "before": before, "after": after,
            "ratio": after["disk_bytes"] / before["disk_bytes"]}  # fmt: skip


def _fresh_sqlite(path: str, reuse: bool) -> None:
    from store.sqlite.writer import ScanStore

    if not reuse:
        for leftover in (path, path + "-wal", path + "-shm"):
            Path(leftover).unlink(missing_ok=True)
    ScanStore.open(path).close()


def _run_stores(args: argparse.Namespace, folder: Path, results: dict[str, Any],
                say: Callable[[str], None]) -> None:  # fmt: skip
    if "sqlite" in args.stores:
        path = args.sqlite_path or str(folder / "growth.db")
        _fresh_sqlite(path, reuse=args.loaded > 0)
        results["sizes"] += grow("sqlite", path, args, say, sqlite_sizes(path))
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    if "postgres" in args.stores:
        from store.postgres.writer import PostgresStore
        from testkit.postgres_cluster import start_cluster

        settings = (*POSTGRES_SETTINGS, *args.postgres_setting)
        cluster = None if args.postgres_url else start_cluster(settings=settings)
        try:
            url = args.postgres_url or cluster.create_database("growth")
            if args.keep and cluster:
                say(f"postgres: kept at {url} (data in {cluster.data_dir})")
            PostgresStore.open(url).close()
            args.postgres_data_dir = cluster.data_dir if cluster else None
            results["sizes"] += grow("postgres", url, args, say, postgres_sizes(url))
            if args.bloat_rows:
                results["bloat"] = bloat(url, args, say)
        finally:
            if cluster and not args.keep:
                cluster.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    def say(line: str) -> None:
        print(f"[{time.perf_counter() - started:7.0f} s] {line}", flush=True)

    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": f"{platform.node()} {os.cpu_count()} CPUs",
                               "started": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
                               "postgres_settings": [*POSTGRES_SETTINGS, *args.postgres_setting],
                               "args": dict(vars(args)), "sizes": []}  # fmt: skip
    if args.memory_cap:
        try:
            args.cap = memory_cap.MemoryCap(args.memory_cap)
        except memory_cap.MemoryCapUnavailable as exc:
            print(f"table_growth.py: cannot cap memory: {exc}", file=sys.stderr)
            return 2
        say(f"drains capped at {args.memory_cap / 2**20:,.0f} MiB ({args.cap.folder})")
    try:
        _run_stores(args, folder, results, say)
    finally:
        if args.cap:
            args.cap.remove()
    results["seconds"] = time.perf_counter() - started
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    missed = report.print_report(results)
    if args.plot != "":
        report.plot(results, Path(args.plot or Path(args.json).with_suffix(".png")))
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
