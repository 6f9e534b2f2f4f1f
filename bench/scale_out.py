"""Scale-out benchmark: 1 and 3 supervisors on one PostgreSQL, 1 on SQLite, one backlog.

Owns: one emulator and one throw-away PostgreSQL cluster (`testkit.postgres_cluster`),
the end-to-end benchmark's workload (`scanner.workload`, with its expected table), and, for
each candidate, a fresh subscription holding the same backlog drained from ready to every
message acked:

  raw            the bare pull-and-ack loop (bench/e2e_raw.py): the reference, same run;
  sqlite x1      one `miniscan-supervisor --workers 2` on a SQLite file;
  postgres x1    one on the PostgreSQL database;
  postgres x3    three separate supervisors (--workers 1 each, so the machine holds three
                 trees) sharing the subscription and the database: the scaled set-up.

It prints messages/s, the ratio to raw, and the rows of each final table that differ from
the expected one (must be 0; exit 1 otherwise). On one 2-core machine three trees compete for
the same cores, so `postgres x3` measures the coordination cost, not the gain of three
machines; the README's capacity model explains how to read the figures.

    .venv/bin/python bench/scale_out.py [--n 60000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from e2e_pubsub import count_deliverable, create_target, delete_target, publish_backlog  # noqa: E402

from scanner.workload import build_workload, rows_wrong  # noqa: E402
from testkit.emulator import start_emulator  # noqa: E402
from testkit.launch import LaunchOptions, child_env, launch_supervisor  # noqa: E402
from testkit.postgres_cluster import start_cluster  # noqa: E402
from testkit.table import read_table  # noqa: E402


def run_raw(emulator_host: str, target, n: int) -> float:
    """The bare loop's rate from its own `ready <t>` to `done <t> <acked>` lines, so that
    its interpreter's start-up is not counted (nor is miniscan's: timed from ready)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "e2e_raw.py"), "--project", target.project,
         "--subscription", target.subscription, "--count", str(n)],
        env=child_env(emulator_host), check=True, timeout=600, capture_output=True, text=True,
    )  # fmt: skip
    said = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    ready = float(said["ready"])
    done, acked = said["done"].split()
    return int(acked) / (float(done) - ready)


def acked_by(supervisors) -> float:
    name = "miniscan_messages_acked_total"
    return sum(s.metrics(only=(name,)).get(name, 0) for s in supervisors)


def run_miniscan(emulator_host: str, target, db: str, trees: int, workers: int, n: int,
                 workdir: Path) -> float:  # fmt: skip
    supervisors = []
    for i in range(trees):
        settings = LaunchOptions(
            emulator_host, db, project=target.project, subscription=target.subscription,
            workers=workers,
        )
        supervisors.append(launch_supervisor(settings, workdir / f"sup-{i}.log", f"sup-{i}"))
    try:
        for supervisor in supervisors:
            if not supervisor.wait_ready(120):
                raise SystemExit(supervisor.log()[-3000:])
        # Timed from the moment the last tree is ready, counting only what was acked from
        # then on: the trees that came up first have started on the backlog already.
        started, at_start = time.monotonic(), acked_by(supervisors)
        deadline = started + 900
        while (acked := acked_by(supervisors)) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        rate = (acked - at_start) / (time.monotonic() - started)
        for supervisor in supervisors:
            if supervisor.stop() != 0:
                raise SystemExit(f"a supervisor did not stop cleanly: {supervisor.log()[-2000:]}")
        return rate
    finally:
        for supervisor in supervisors:
            supervisor.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60_000)
    args = parser.parse_args()
    workload = build_workload(args.n, keys=args.n // 4, seed=5)
    n = len(workload.payloads)
    emulator = start_emulator()
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    cluster = start_cluster()
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="miniscan-scale-") as folder:
            workdir = Path(folder)
            candidates = [("raw", None, 0, 0), ("sqlite x1", str(workdir / "one.db"), 1, 2),
                          ("postgres x1", "pg", 1, 2), ("postgres x3", "pg", 3, 1)]  # fmt: skip
            for name, db, trees, workers in candidates:
                target = create_target(name)
                publish_backlog(target, workload.payloads)
                print(f"{name}: draining {n:,} messages ...", file=sys.stderr)
                if db is None:
                    rate, wrong = run_raw(emulator.host, target, n), 0
                else:
                    store = cluster.create_database("scale") if db == "pg" else db
                    rate = run_miniscan(emulator.host, target, store, trees, workers, n, workdir)
                    wrong = rows_wrong(workload.expected, read_table(store))
                    time.sleep(11)  # past the 10 s ack deadline: anything unacked shows now
                    wrong += count_deliverable(target)
                delete_target(target)
                results.append((name, rate, wrong))
    finally:
        cluster.stop()
        emulator.stop()
    raw = results[0][1]
    print(f"| candidate | msgs/s | vs raw | wrong rows + redeliverable |  ({n:,} messages)")
    print("|---|---|---|---|")
    for name, rate, wrong in results:
        print(f"| {name} | {rate:,.0f} | {rate / raw:.2f}x | {wrong} |")
    return 1 if any(wrong for _, _, wrong in results) else 0


if __name__ == "__main__":
    sys.exit(main())
