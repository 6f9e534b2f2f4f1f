"""The table-growth benchmark's figures as text, verdicts and a picture.

Owns: one line per measured size, the summary table per store, the verdicts of issue 26
(drain rate against the near-empty table, of the backlog's own size, as an empty
one has no keys to update: at least 0.8x at 10M rows and 0.6x at 100M; the
writer's peak memory within +50 MiB of the empty table's; `miniscan stats` under 1 s and
`query --ip` p99 under 50 ms at the largest size; PostgreSQL's size after the update
rounds within 1.3x of its size after the load), and the plot of msgs/s against rows.

    .venv/bin/python bench/table_growth_report.py RUN.json [RUN.json...] [--plot PNG]

Never: measure anything (bench/table_growth.py does), or call a verdict met for a size that
was not measured: it says "not measured" instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
RATE_FLOORS = {10_000_000: 0.8, 100_000_000: 0.6}
MEMORY_GROWTH_MIB = 50
STATS_CEILING_S = 1.0
QUERY_P99_CEILING_MS = 50.0
BLOAT_CEILING = 1.3


def one_line(r: Mapping[str, Any]) -> str:
    per_row = f"{r['bytes_per_row']:.0f} B/row"
    return (
        f"{r['store']:8} {r['rows']:>12,} rows: writer {r['writer_msgs_per_s']:>8,.0f} msgs/s,"
        f" raw {r['raw_msgs_per_s']:>8,.0f} ({r['writer_msgs_per_s'] / r['raw_msgs_per_s']:.2f}x),"
        f" open {r['writer_open_s']:.2f} s, peak {r['writer_peak_mib']:.0f} MiB,"
        f" busy {r.get('writer_cpu_share', 0):.0%},"
        f" disk {r['disk_bytes'] / MIB:,.0f} MiB ({per_row}), stats {r['stats_s']:.2f} s"
        f" (in-process {r['stats_in_process_s']:.2f} s),"
        f" query --ip {r['query_cli_s']:.2f} s (in-process p50 {r['query_p50_ms']:.1f} ms,"
        f" p99 {r['query_p99_ms']:.1f} ms)"
    )


def _by_store(results: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    stores: dict[str, list[Mapping[str, Any]]] = {}
    for r in results["sizes"]:
        stores.setdefault(r["store"], []).append(r)
    return stores


def verdicts(results: Mapping[str, Any]) -> list[tuple[str, bool | None, str]]:
    """(what, met or None when not measured, the figure)."""
    found: list[tuple[str, bool | None, str]] = []
    for store, sizes in _by_store(results).items():
        empty = next((r for r in sizes if r["size"] == 0), None)
        largest = max(sizes, key=lambda r: r["rows"])
        for rows, floor in RATE_FLOORS.items():
            at = next((r for r in sizes if r["size"] == rows), None)
            what = f"{store}: drain at {rows:,} rows >= {floor}x the near-empty table's"
            if empty is None or at is None:
                found.append((what, None, "not measured"))
                continue
            ratio = at["writer_msgs_per_s"] / empty["writer_msgs_per_s"]
            found.append((what, ratio >= floor, f"{ratio:.2f}x"))
        if empty is not None and largest is not empty:
            growth = largest["writer_peak_mib"] - empty["writer_peak_mib"]
            found.append((f"{store}: writer's peak memory at {largest['rows']:,} rows within"
                          f" +{MEMORY_GROWTH_MIB} MiB of empty", growth <= MEMORY_GROWTH_MIB,
                          f"{growth:+.0f} MiB"))  # fmt: skip
        at = f"at {largest['rows']:,} rows"
        found.append((f"{store}: miniscan stats < {STATS_CEILING_S:.0f} s {at}",
                      largest["stats_s"] < STATS_CEILING_S, f"{largest['stats_s']:.2f} s"))
        found.append((f"{store}: query --ip p99 < {QUERY_P99_CEILING_MS:.0f} ms {at}",
                      largest["query_p99_ms"] < QUERY_P99_CEILING_MS,
                      f"{largest['query_p99_ms']:.1f} ms"))  # fmt: skip
    for b in _bloats(results):
        found.append((f"postgres: size after {b['rounds']} update rounds of {b['rows']:,} rows"
                      f" ({_settings(b)}) <= {BLOAT_CEILING}x the loaded size",
                      b["ratio"] <= BLOAT_CEILING, f"{b['ratio']:.2f}x"))  # fmt: skip
    return found


def _bloats(results: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(results.get("bloats", [])) + ([results["bloat"]] if "bloat" in results else [])


def merge(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several runs' results as one (runs of one store each, or a bloat-only run)."""
    return {
        "machine": runs[0]["machine"],
        "started": ", ".join(sorted({run["started"] for run in runs})),
        "seconds": sum(run["seconds"] for run in runs),
        "sizes": [size for run in runs for size in run["sizes"]],
        "bloats": [bloat for run in runs for bloat in _bloats(run)],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print (and plot) the results of former runs: `table_growth_report.py a.json b.json
    [--plot out.png] [--json merged.json]`."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results = merge([json.loads(path.read_text()) for path in args.runs])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    missed = print_report(results)
    if args.plot:
        plot(results, args.plot)
    return 1 if missed else 0


def _settings(bloat: Mapping[str, Any]) -> str:
    if "reloptions" in bloat:  # what the table had: the schema's, or the run's --fillfactor...
        return ", ".join(bloat["reloptions"]) or "PostgreSQL's defaults"
    scale = bloat.get("vacuum_scale_factor")  # runs recorded before reloptions were
    vacuum = "default autovacuum" if scale is None else f"autovacuum scale factor {scale}"
    return f"fillfactor {bloat['fillfactor']}, {vacuum}"


def print_report(results: Mapping[str, Any]) -> int:
    """Print the table and the verdicts; the number of verdicts missed."""
    print(f"\ntable growth on {results['machine']}, started {results['started']},"
          f" {results['seconds']:.0f} s in all")  # fmt: skip
    for store, sizes in _by_store(results).items():
        empty = next((r for r in sizes if r["size"] == 0), None)
        print(f"\n{store}: rows | writer msgs/s | vs empty | raw msgs/s | writer/raw | open s |"
              " peak MiB | disk MiB | B/row | stats s | query CLI s | query p99 ms | load s")
        for r in sizes:
            vs_empty = (f"{r['writer_msgs_per_s'] / empty['writer_msgs_per_s']:.2f}x"
                        if empty else "-")  # fmt: skip
            per_row = f"{r['bytes_per_row']:.0f}"
            print(f"  {r['rows']:>11,} | {r['writer_msgs_per_s']:>8,.0f} | {vs_empty} |"
                  f" {r['raw_msgs_per_s']:>8,.0f} |"
                  f" {r['writer_msgs_per_s'] / r['raw_msgs_per_s']:.2f}x |"
                  f" {r['writer_open_s']:.2f} | {r['writer_peak_mib']:.0f} |"
                  f" {r['disk_bytes'] / MIB:,.0f} | {per_row} | {r['stats_s']:.2f} |"
                  f" {r['query_cli_s']:.2f} | {r['query_p99_ms']:.1f} | {r['load_s']:.0f}")
            if "table_bytes" in r:
                print(f"    table {r['table_bytes'] / MIB:,.0f} MiB,"
                      f" indexes {r['index_bytes'] / MIB:,.0f} MiB")
    for b in _bloats(results):
        print(f"\npostgres bloat: {b['rows']:,} rows, {_settings(b)}, {b['rounds']}"
              f" update rounds in {b['seconds']:.0f} s: {b['before']['disk_bytes'] / MIB:,.0f}"
              f" -> {b['after']['disk_bytes'] / MIB:,.0f} MiB ({b['ratio']:.2f}x; table"
              f" {b['after']['table_bytes'] / MIB:,.0f}, indexes"
              f" {b['after']['index_bytes'] / MIB:,.0f})")  # fmt: skip
    print("\nverdicts (issue 26):")
    missed = 0
    for what, met, figure in verdicts(results):
        mark = "NOT MEASURED" if met is None else ("met" if met else "MISSED")
        missed += met is False
        print(f"  {mark:12} {what}: {figure}")
    return missed


def plot(results: Mapping[str, Any], path: Path) -> Path | None:
    """msgs/s against rows (log scale), writer and raw of each store; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib (the bench extra): no plot drawn")
        return None
    figure, axes = plt.subplots(figsize=(7, 4.2))
    for store, sizes in _by_store(results).items():
        xs = [r["rows"] for r in sizes]
        for kind, style in (("writer", "-o"), ("raw", "--s")):
            ys: Sequence[float] = [r[f"{kind}_msgs_per_s"] for r in sizes]
            axes.plot(xs, ys, style, label=f"{store} {kind}")
    axes.set_xscale("log")
    axes.set_xlabel("rows in scans before the drain (leftmost: near-empty, the backlog's size)")
    axes.set_ylabel("msgs/s draining the backlog")
    axes.set_ylim(bottom=0)
    axes.set_title(f"Drain rate against table size ({results['started'][:10]},"
                   f" {results['machine']})", fontsize=9)  # fmt: skip
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


if __name__ == "__main__":
    sys.exit(main())
