"""The benchmark's pictures: bench/plots.py draws three PNGs from a small figures structure,
and --record's merge keeps the sections a run did not measure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH_DIR))

from plots import main, merge, plot  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SOURCE = {"run": "2026-01-01 00:00 UTC", "server": "Google's Pub/Sub emulator"}
FIGURES = {
    "throughput": {
        **SOURCE, "messages": 500,
        "raw": {"msgs_per_s": 4000, "runs": [3900, 4000, 4100]},
        "naive": {"msgs_per_s": 200, "runs": [200]},
        "workers": [1, 2], "msgs_per_s": [1500, 2000], "runs": [[1400, 1500], [2000]],
    },
    "latency": {**SOURCE, "rate": [100, 500], "p50_ms": [20, 22], "p95_ms": [35, 38],
                "p99_ms": [40, 50]},
    "memory": {**SOURCE, "backlog": [500, 5000], "rss_mib": [200, 205], "pss_mib": None,
               "workers": "w2"},
}  # fmt: skip


def test_three_png_files_are_written(tmp_path: Path) -> None:
    written = plot(FIGURES, tmp_path / "plots")
    assert sorted(p.name for p in written) == ["latency.png", "memory.png", "throughput.png"]
    for path in written:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_the_command_redraws_from_a_json_file(tmp_path: Path) -> None:
    figures = tmp_path / "figures.json"
    figures.write_text(json.dumps({"latency": FIGURES["latency"]}))
    assert main([str(figures)]) == 0
    assert [p.name for p in tmp_path.glob("*.png")] == ["latency.png"]


def test_a_run_replaces_only_the_sections_it_measured() -> None:
    newer = {"latency": {**FIGURES["latency"], "run": "later"}}
    merged = merge(FIGURES, newer)
    assert merged["latency"]["run"] == "later" and merged["memory"] == FIGURES["memory"]
