"""Upgrade a large SQLite store under the real supervisor: does it come up, and how long?

Owns: building a schema-3 SQLite file of `--rows` rows (bench/table_load.py's bulk load into
today's layout, then version 3's `scan_counts` put back, as miniscan 9030d57 left it), and
starting `miniscan-supervisor` on it against a Pub/Sub server (Google's emulator where
installed). The supervisor opens the database, so migrates it (schema 4 counts the rows per
service once), before any child exists. It prints how long the supervisor took to answer
/readyz, how often /healthz answered meanwhile (a Kubernetes startup probe gives up after
90 s without an answer), how many times it spawned the writer, and its "still opening" lines.

Never: run in `make test` (a 30M-row file takes minutes to build and to migrate), or keep
its files unless `--keep`.

    .venv/bin/python bench/upgrade_at_scale.py [--rows 30M] [--dir data/upgrade] [--timeout 900]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import apsw  # noqa: E402
import table_load  # noqa: E402
from table_growth import parse_count  # noqa: E402

from broker import admin, client  # noqa: E402
from contracts import defaults  # noqa: E402
from store.sqlite.writer import ScanStore  # noqa: E402
from testkit.emulator import emulator_env, start_emulator  # noqa: E402
from testkit.launch import LaunchOptions, launch_supervisor  # noqa: E402
from testkit.scrape import fetch  # noqa: E402

# Version 3's kept count, exactly as miniscan 9030d57 created it (one row, slot 0).
VERSION_3_COUNTS = (
    "DROP TRIGGER IF EXISTS scans_count_deleted",
    "DROP TABLE scan_counts",
    "CREATE TABLE scan_counts (slot INTEGER PRIMARY KEY,"
    " row_count INTEGER NOT NULL CHECK (typeof(row_count) = 'integer'))",
    "INSERT INTO scan_counts (slot, row_count) SELECT 0, count(*) FROM scans",
    "CREATE TRIGGER scans_count_deleted AFTER DELETE ON scans"
    " BEGIN UPDATE scan_counts SET row_count = row_count - 1 WHERE slot = 0; END",
    "PRAGMA user_version = 3",
)


def build_version_3(path: str, rows: int) -> None:
    ScanStore.open(path).close()
    table_load.load_sqlite(path, 0, rows, print)
    downgrade_to_version_3(path)


def downgrade_to_version_3(path: str) -> None:
    conn = apsw.Connection(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for statement in VERSION_3_COUNTS:
            conn.execute(statement)
        conn.execute("COMMIT")
    finally:
        conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="30M")
    p.add_argument("--dir", default="data/upgrade")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--file", help="turn this current miniscan file back into schema 3 instead"
                   " of building one (e.g. bench/table_growth.py's 100M-row file, kept)")
    args = p.parse_args(argv)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = args.file or str(folder / "v3.db")
    started = time.perf_counter()
    if args.file:
        downgrade_to_version_3(path)
    else:
        build_version_3(path, parse_count(args.rows))
    print(f"schema-3 file ready in {time.perf_counter() - started:.0f} s")
    emulator = start_emulator()
    try:
        with emulator_env(emulator.host):
            publisher, subscriber = client.publisher_client(), client.subscriber_client()
            project, topic = defaults.DEFAULT_PROJECT, defaults.DEFAULT_TOPIC
            admin.ensure_topic(publisher, project, topic)
            admin.ensure_subscription(subscriber, project, topic, defaults.DEFAULT_SUBSCRIPTION)
            subscriber.close()
        options = LaunchOptions(emulator_host=emulator.host, db_path=path, workers=1)
        supervisor = launch_supervisor(options, folder / "supervisor.log")
        launched = time.perf_counter()
        probes = answered = 0  # /healthz while not ready: what a startup probe would see
        missed_after_first = 0  # the first probes may come before the server listens
        ready = False
        while time.perf_counter() - launched < args.timeout and supervisor.process.poll() is None:
            if supervisor.ready():
                ready = True
                break
            probes += 1
            ok = fetch(supervisor.url("/healthz"), 2.0)[0] == 200
            missed_after_first += bool(answered) and not ok
            answered += ok
            time.sleep(1.0)
        took = time.perf_counter() - launched
        log = supervisor.log()
        supervisor.stop()
    finally:
        emulator.stop()
    writers = sum(1 for name, _ in supervisor.spawned() if name == "writer")
    print(f"ready: {ready} after {took:.0f} s; writer spawned {writers} time(s); /healthz"
          f" answered 200 to {answered} of {probes} probes before ready")  # fmt: skip
    for line in log.splitlines():
        if "still opening" in line or "not ready after" in line:
            print("  " + line[:200])
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if ready and writers == 1 and answered and not missed_after_first else 1


if __name__ == "__main__":
    sys.exit(main())
