"""The store benchmark still runs and reports every figure (at tiny sizes: a smoke test
that keeps bench/store_bench.py from rotting; the figures themselves mean nothing here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "store_bench.py"


def test_store_bench_quick_run_prints_all_figures(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for label in ("raw apsw executemany", "ScanStore.write_batch", "one txn per row"):
        assert re.search(rf"{re.escape(label)}.*\d[\d,]* rows/s", out), out
    assert re.search(r"store/raw\s+\d+\.\d\d", out) and re.search(r"store/naive\s+\d+\.\dx", out)
    assert list(tmp_path.iterdir()) == []  # its temporary databases are gone
