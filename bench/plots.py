"""The end-to-end benchmark's figures as pictures: three PNGs beside bench/RESULTS.md.

Owns: the small figures structure (plain dicts of lists, kept as bench/plots/figures.json),
building it from a finished run of bench/e2e.py, merging it into the recorded one, and
drawing it with matplotlib's Agg backend into
  throughput.png  drain msgs/s against --workers, next to the bare loop (raw) and naive;
  latency.png     publish -> visible row p50 / p95 / p99 against the publish rate;
  memory.png      the tree's peak RSS (and PSS when measured) against the backlog size.
Every section carries the run it came from and the Pub/Sub server it ran against, and every
title says that server: figures from the emulator must never pass for real Pub/Sub's.

Never: measure anything, decide pass/fail, or touch RESULTS.md; never invent a figure a
run did not record (a missing candidate or PSS is left out of the picture and said so).
matplotlib is the `bench` extra only: miniscan itself must never import this module.

    .venv/bin/python bench/plots.py bench/plots/figures.json   # redraw from what is recorded
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Figures = dict[str, Any]
MIB = 1024
PLOT_NAMES = ("throughput", "latency", "memory")


# --- from a finished run -------------------------------------------------------------------


def figures_of(results: Any, run: str, server: str) -> Figures:
    """The plotted figures of an e2e.py run (`e2e_report.Results`, duck-typed): one section
    per mode that ran, each saying when it ran and on which Pub/Sub server."""
    figures: Figures = {}
    source = {"run": run, "server": server}
    if results.throughput:
        by_name = {r.candidate: r for r in results.throughput}
        miniscan = sorted(
            (int(r.candidate.removeprefix("miniscan w")), r)
            for r in results.throughput
            if r.candidate.startswith("miniscan w")
        )

        def reference(name: str) -> dict[str, Any] | None:
            found = by_name.get(name)
            if found is None:
                return None
            return {"msgs_per_s": round(found.rate), "runs": [round(x) for x in found.all_rates]}

        figures["throughput"] = {
            **source,
            "messages": results.throughput[0].messages,
            "raw": reference("raw"),
            "raw_held": reference("raw-held"),
            "naive": reference("naive"),
            "workers": [w for w, _ in miniscan],
            "msgs_per_s": [round(r.rate) for _, r in miniscan],
            "runs": [[round(x) for x in r.all_rates] for _, r in miniscan],
        }
    if results.latency:
        rows = results.latency
        figures["latency"] = {
            **source,
            "rate": [round(r.achieved_rate) for r in rows],
            **{
                f"p{q * 100:.0f}_ms": [round(r.db_percentiles[q] * 1000, 1) for r in rows]
                for q in (0.5, 0.95, 0.99)
            },
        }
    if results.memory:
        rows = results.memory
        pss = [round(r.peak_tree_pss_kib / MIB) for r in rows]
        figures["memory"] = {
            **source,
            "backlog": [r.messages for r in rows],
            "rss_mib": [round(r.peak_tree_rss_kib / MIB) for r in rows],
            "pss_mib": pss if any(pss) else None,
            "workers": rows[0].candidate.removeprefix("miniscan ").split()[0],
        }
    return figures


def merge(recorded: Mapping[str, Any], new: Mapping[str, Any]) -> Figures:
    """A run replaces the sections it measured; the others stay as recorded."""
    return {**recorded, **new}


# --- drawing -------------------------------------------------------------------------------


def _title(axes: Any, what: str, section: Mapping[str, Any]) -> None:
    axes.set_title(f"{what}\n{section['server']}, run of {section['run']}", fontsize=10, loc="left")


def _throughput(axes: Any, t: Mapping[str, Any]) -> None:
    workers, rates = t["workers"], t["msgs_per_s"]
    positions = list(range(len(workers)))
    axes.bar(positions, rates, color="tab:blue", width=0.7, label="miniscan (median)")
    for x, runs in zip(positions, t.get("runs") or [], strict=False):
        if len(runs) > 1:
            axes.plot([x] * len(runs), runs, "o", color="black", markersize=4, alpha=0.6)
    for x, rate in zip(positions, rates, strict=True):
        share = f"\n{rate / t['raw']['msgs_per_s']:.2f}x raw" if t.get("raw") else ""
        axes.text(
            x,
            rate / 2,
            f"{rate:,}{share}",
            ha="center",
            va="center",
            fontsize=8,
            color="white",
            fontweight="bold",
        )  # inside the bar: clear of the dots
    notes = []
    for name, style, label in (
        ("raw", "tab:green", "raw (bare pull+ack loop)"),
        ("raw_held", "tab:olive", "raw-held (bare loops, one a CPU, a pull held)"),
        ("naive", "tab:red", "naive (one commit per message)"),
    ):
        if t.get(name):
            rate = t[name]["msgs_per_s"]
            axes.axhline(rate, color=style, linestyle="--", label=f"{label}: {rate:,}")
        else:
            notes.append(f"{name}: not run")
    axes.set_xticks(positions, [f"--workers {w}" for w in workers])
    axes.set_xlim(-0.75, len(workers) - 0.25)
    axes.set_ylabel("msgs/s, ready -> all acked")
    references = [t[n]["msgs_per_s"] for n in ("raw", "raw_held", "naive") if t.get(n)]
    axes.set_ylim(0, max([*rates, *references]) * 1.25)
    dots = " (dots: single runs)" if any(len(r) > 1 for r in t.get("runs") or []) else ""
    _title(axes, f"Drain of {t['messages']:,} messages{dots}", t)
    axes.legend(loc="upper left", fontsize=8, title="; ".join(notes) or None, title_fontsize=8)


def _label_points(axes: Any, xs: Sequence[float], ys: Sequence[float], text: str) -> None:
    for x, y in zip(xs, ys, strict=True):
        axes.annotate(text.format(y), (x, y), fontsize=8, xytext=(4, 4), textcoords="offset points")


def _log_x_axis(
    axes: Any, ticks: Sequence[float], margin: float, xlabel: str, ylabel: str, top: float
) -> None:
    """A log x axis ticked at the measured points, a y axis from 0 with room for labels."""
    axes.set_xscale("log")
    axes.set_xticks(ticks, [f"{t:,}" for t in ticks])
    axes.minorticks_off()
    axes.margins(x=margin)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_ylim(0, top * 1.25)
    axes.grid(axis="y", alpha=0.3)


def _latency(axes: Any, lat: Mapping[str, Any]) -> None:
    rates = lat["rate"]
    for key, color in (("p50_ms", "tab:blue"), ("p95_ms", "tab:orange"), ("p99_ms", "tab:red")):
        axes.plot(rates, lat[key], "o-", color=color, label=key.removesuffix("_ms"))
        _label_points(axes, rates, lat[key], "{:.0f}")
    _log_x_axis(axes, rates, 0.1, "publish rate, msgs/s (achieved)",
                "publish -> row visible, ms", max(lat["p99_ms"]))  # fmt: skip
    _title(axes, "Latency percentiles against publish rate", lat)
    axes.legend(loc="lower right", fontsize=8)


def _memory(axes: Any, mem: Mapping[str, Any]) -> None:
    backlog = mem["backlog"]
    axes.plot(backlog, mem["rss_mib"], "o-", color="tab:purple", label="peak RSS, summed")
    series = [mem["rss_mib"]]
    if mem.get("pss_mib"):
        axes.plot(backlog, mem["pss_mib"], "s-", color="tab:green", label="peak PSS (shared / n)")
        series.append(mem["pss_mib"])
    for values in series:
        _label_points(axes, backlog, values, "{:,}")
    _log_x_axis(axes, backlog, 0.15, "backlog, messages", "whole process tree, MiB",
                max(max(v) for v in series))  # fmt: skip
    tree = f"miniscan {mem['workers']}: " if mem.get("workers") else ""
    _title(axes, f"{tree}memory against backlog size", mem)
    missing = None if mem.get("pss_mib") else "PSS: not measured"
    axes.legend(loc="lower right", fontsize=8, title=missing, title_fontsize=8)


DRAW = {"throughput": _throughput, "latency": _latency, "memory": _memory}


def plot(figures: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Draw each section present in `figures` into out_dir/<section>.png; the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PLOT_NAMES:
        if not figures.get(name):
            continue
        fig, axes = pyplot.subplots(figsize=(6.4, 4.2), dpi=110)
        try:
            DRAW[name](axes, figures[name])
            fig.tight_layout()
            path = out_dir / f"{name}.png"
            fig.savefig(path)
            written.append(path)
        finally:
            pyplot.close(fig)
    return written


def record(figures: Mapping[str, Any], results_path: Path) -> list[Path]:
    """Merge a run's figures into plots/figures.json beside results_path and redraw."""
    out_dir = results_path.parent / "plots"
    json_path = out_dir / "figures.json"
    recorded = json.loads(json_path.read_text()) if json_path.exists() else {}
    merged = merge(recorded, figures)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(merged, indent=2) + "\n")
    return plot(merged, out_dir)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: plots.py FIGURES.json   (PNGs are written beside it)", file=sys.stderr)
        return 2
    json_path = Path(args[0])
    for path in plot(json.loads(json_path.read_text()), json_path.parent):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
