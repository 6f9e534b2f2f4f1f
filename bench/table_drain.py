"""One drain of the table-growth benchmark, in a child process of its own, and its figures.

Owns: starting a fresh `spawn` child (so that its memory is its own: no parent's pages, no
parent's high-water mark), placing it under bench/table_growth.py's memory cap when there is
one, and in the child: building one backlog (bench/table_keys.py), opening the store as
`kind` says (`writer`: miniscan's own `open_store(...).write_batch`; `raw`: the bare upsert
of bench/store_bench*.py) and writing it in batches, then putting back the open time,
msgs/s, CPU share and peak RSS.

Never: load, measure sizes or judge (bench/table_growth.py and its report do), or outlive
its parent's wait (an hour at most).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from collections.abc import Callable

import table_keys


def drain(kind: str, target: str, rows: int, backlog: int, batch: int, run: int, out) -> None:
    """Child process: write one backlog into `target` as `kind` does; put the figures."""
    records = table_keys.backlog(rows, backlog, run, table_keys.responses())
    batches = [records[i : i + batch] for i in range(0, len(records), batch)]
    baseline = _status_kib("VmRSS")
    started = time.perf_counter()
    write = _writer(target) if kind == "writer" else _raw(target)
    opened, cpu_before = time.perf_counter(), _cpu_s()
    write(batches)
    finished, cpu = time.perf_counter(), _cpu_s() - cpu_before
    out.put({"open_s": opened - started, "drain_s": finished - opened,
             "msgs_per_s": len(records) / (finished - opened), "baseline_kib": baseline,
             "cpu_share": cpu / (finished - opened),
             "peak_kib": _status_kib("VmHWM")})  # fmt: skip


def _writer(target: str) -> Callable[[list], None]:
    from store.backend import open_store

    store = open_store(target)

    def write(batches: list) -> None:
        with store:
            for batch in batches:
                store.write_batch(batch)

    return write


def _raw(target: str) -> Callable[[list], None]:
    if target.startswith("postgresql://"):
        from store_bench_postgres import write_copy

        return lambda batches: write_copy(target, batches)
    from store_bench import fresh_connection, plain_upsert_row, write_raw_batch

    conn = fresh_connection(target)

    def write(batches: list) -> None:
        tuples = [[plain_upsert_row(r) for r in b] for b in batches]
        for batch in tuples:
            write_raw_batch(conn, batch)
        conn.close()

    return write


def _cpu_s() -> float:
    """CPU seconds of this process (the PostgreSQL server's are not in it)."""
    times = os.times()
    return times.user + times.system


def _status_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process. Not ru_maxrss: that keeps the high-water
    mark of the parent the child was forked from, across exec."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def run_child(kind: str, target: str, rows: int, args: argparse.Namespace, run: int) -> dict:
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    child = context.Process(target=drain, args=(kind, target, rows, args.backlog, args.batch,
                                                run, out))  # fmt: skip
    child.start()
    if args.cap:
        args.cap.confine(child.pid)
    try:
        figures = out.get(timeout=3600)
    finally:
        child.join(timeout=60)
    if child.exitcode != 0:
        raise RuntimeError(f"{kind} child exited {child.exitcode}")
    return figures
