"""The issue's targets for the end-to-end benchmark, and whether a run met them.

Owns: the thresholds (share of `raw`, multiple of `naive`, p99 latency at 500/s, peak RSS
per process, flat memory between backlogs) and one `- met:` / `- MISSED:` line per target
that the run measured, plus the correctness lines (wrong rows, unclean exits, redelivered
messages).

Never: measure or print; a missed target is reported here, never turned into a failure
(the figures depend on the machine). Wrong rows are the caller's exit code.
"""

from __future__ import annotations

from e2e_candidates import RunFigures
from e2e_report import Results

SHARE_OF_RAW = 0.5
TIMES_NAIVE = 20.0
P99_LIMIT_S = 0.25
P99_RATE = 500.0
RSS_LIMIT_BYTES = 80_000_000  # "80 MB", i.e. 76.3 MiB
FLAT_GROWTH = 1.10  # peak RSS at the big backlog may be at most 10% above the small one


def verdicts(results: Results) -> list[str]:
    runs = results.throughput
    lines = _throughput_verdicts(runs)
    for latency in results.latency:
        if latency.rate == P99_RATE:
            p99 = latency.db_percentiles[0.99]
            lines.append(_verdict(
                p99 < P99_LIMIT_S,
                f"p99 publish-to-commit at {latency.rate:.0f}/s is {p99 * 1000:.0f} ms "
                f"(target < {P99_LIMIT_S * 1000:.0f} ms)",
            ))  # fmt: skip
    measured = [*runs, *results.memory]
    processes = [p for r in measured if r.candidate.startswith("miniscan") for p in r.processes]
    if processes:
        worst = max(processes, key=lambda p: p.peak_rss_kib)
        peak_bytes = worst.peak_rss_kib * 1024
        lines.append(_verdict(
            peak_bytes < RSS_LIMIT_BYTES,
            f"largest miniscan process peaked at {peak_bytes / 1e6:.0f} MB "
            f"({worst.peak_rss_kib / 1024:.0f} MiB, {worst.name}; target < 80 MB)",
        ))  # fmt: skip
    if len(results.memory) >= 2:
        small, big = results.memory[0], results.memory[-1]
        growth = worst_growth(small, big)
        lines.append(_verdict(
            growth <= FLAT_GROWTH,
            f"peak RSS per process at {big.messages:,} vs {small.messages:,} messages: "
            f"at most x{growth:.2f} (target flat, <= x{FLAT_GROWTH:.2f})",
        ))  # fmt: skip
    wrong = [r.candidate for r in measured if r.rows_wrong]
    lines.append(
        _verdict(not wrong, "wrong rows in: " + ", ".join(wrong) if wrong else "no wrong rows")
    )
    failed = [f"{r.candidate} ({r.exit_code})" for r in measured if r.exit_code]
    if failed:
        lines.append(_verdict(False, "candidates that did not exit cleanly: " + ", ".join(failed)))
    redelivered = [r.candidate for r in measured if r.redelivered]
    if redelivered:
        lines.append(
            _verdict(False, "unacknowledged messages came back in: " + ", ".join(redelivered))
        )
    return lines


def _throughput_verdicts(runs: list[RunFigures]) -> list[str]:
    raw = next((r for r in runs if r.candidate == "raw"), None)
    naive = next((r for r in runs if r.candidate == "naive"), None)
    miniscan = [r for r in runs if r.candidate.startswith("miniscan")]
    if not (miniscan and raw and naive):
        return []
    best = max(miniscan, key=lambda r: r.rate)
    share, times = best.rate / raw.rate, best.rate / naive.rate
    lines = [
        _verdict(share >= SHARE_OF_RAW, f"{best.candidate} reaches {share:.0%} of raw "
                 f"(target {SHARE_OF_RAW:.0%})"),
        _verdict(times >= TIMES_NAIVE, f"{best.candidate} is {times:.1f}x naive "
                 f"(target {TIMES_NAIVE:.0f}x; raw itself is {raw.rate / naive.rate:.1f}x)"),
    ]  # fmt: skip
    for flavor in runs:
        if flavor.candidate.startswith("naive-"):
            lines.append(f"- for reference: {best.candidate} is "
                         f"{best.rate / flavor.rate:.1f}x {flavor.candidate}")  # fmt: skip
    return lines


def worst_growth(small: RunFigures, big: RunFigures) -> float:
    """The largest ratio of a process's peak RSS at the big backlog to the small one."""
    before = {p.name: p.peak_rss_kib for p in small.processes}
    ratios = [p.peak_rss_kib / before[p.name] for p in big.processes if before.get(p.name)]
    return max(ratios, default=1.0)


def _verdict(met: bool, text: str) -> str:
    return f"- {'met' if met else 'MISSED'}: {text}"
