"""Smoke test: bench/emulator_hold.py drains with and without a held pull, in one process and
in two, and prints its table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "emulator_hold.py"


@pytest.mark.emulator
def test_each_case_drains_the_backlog_and_gets_a_row(pubsub_emulator: str) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--n", "401", "--hold-pulls", "0,1", "--pullers", "1,2",
         "--rounds", "1", "--warm-up", "0", "--emulator-host", pubsub_emulator],
        capture_output=True, text=True, timeout=120, cwd=BENCH.parents[1],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = re.findall(
        r"^\| (\d+) \| (\d+) \| ([\d,]+) \| (\S+) \| ([\d.]+)x \|$", result.stdout, re.M
    )
    assert [row[:2] for row in rows] == [("1", "0"), ("1", "1"), ("2", "0"), ("2", "1")], (
        result.stdout
    )
    assert all(int(rate.replace(",", "")) > 0 for _, _, rate, _, _ in rows)
    assert rows[0][4] == "1.00"  # the first case is the reference of its round
    assert rows[0][3] == "-"  # a server someone else started: its CPU is not measured
