"""bench/partition_cost.py still runs and prints both layouts' figures (tiny sizes: a smoke
test that keeps it from rotting; the figures themselves mean nothing here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "partition_cost.py"


def test_partition_cost_quick_run_prints_both_layouts() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--records", "2000", "--batch", "500", "--partitions", "4",
         "--rounds", "1"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"new keys.*\d[\d,]*.*\d[\d,]*", done.stdout), done.stdout
    assert re.search(r"\d\.\d\d", done.stdout), done.stdout  # partitioned / plain
