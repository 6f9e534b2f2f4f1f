"""Smoke test: the decode benchmark runs end to end on a tiny mix and reports its figures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "decode_bench.py"


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=BENCH.parents[1],
    )


def test_bench_prints_rates_and_reference_ratios() -> None:
    result = run_bench("--messages", "400", "--repeat", "1")
    assert result.returncode == 0, result.stderr
    rates = re.findall(r"^\s+(\S+)(?: only)?\s+([\d,]+) msgs/s", result.stdout, re.MULTILINE)
    names = [name for name, _ in rates]
    assert names.count("decode_scan") == 2  # hosts repeating, and every IP distinct
    assert "json.loads" in names
    assert all(int(rate.replace(",", "")) > 0 for _, rate in rates)
    assert "decode_scan/this = " in result.stdout
    # the generated 2% invalid share is rejected, with reasons from the decoder's table
    assert re.search(r"rejected: \w+", result.stdout), result.stdout


def test_bench_refuses_a_bad_message_count_in_one_line() -> None:
    result = run_bench("--messages", "0")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--messages" in result.stderr
