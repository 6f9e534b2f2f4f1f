"""bench/btree_in_memory.py runs tiny on both layouts and two page sizes, prints a figure and
a ratio for each size, builds the layout it names, and leaves no file behind.

Its figures at tiny size mean nothing; at full size it is a benchmark, never in `make test`."""

from __future__ import annotations

import re
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import btree_in_memory  # noqa: E402


def test_a_tiny_run_prints_each_layout_page_size_and_size(tmp_path, capsys) -> None:
    argv = ["--sizes", "45k", "--layouts", "rowid,without-rowid", "--page-sizes", "4096,1024",
            "--rounds", "1", "--backlog", "2000", "--dir", str(tmp_path)]  # fmt: skip
    assert btree_in_memory.main(argv) == 0
    out = capsys.readouterr().out
    figure = r"^(\S+) +page +(\d+) +([\d,]+) rows: +[\d,]+ msgs/s \(([\d.]+)x\)"
    lines = re.findall(figure, out, re.M)
    assert [(layout, page, rows) for layout, page, rows, _ in lines] == [
        (layout, page, rows)
        for layout in ("rowid", "without-rowid")
        for page in ("4096", "1024")
        for rows in ("40,000", "45,000")
    ]
    assert all(ratio == "1.00" for _, _, rows, ratio in lines if rows == "40,000")
    assert list(tmp_path.iterdir()) == []


def test_each_layout_is_the_one_it_names(tmp_path) -> None:
    for layout, page_size in (("rowid", 4096), ("without-rowid", 1024)):
        path = str(tmp_path / f"{layout}.db")
        conn = btree_in_memory.create(path, layout, page_size)
        btree_in_memory.grow(conn, 0, 100)
        assert conn.pragma("page_size") == page_size
        sql = conn.execute("SELECT sql FROM sqlite_schema WHERE name = 'scans'").fetchall()[0][0]
        assert sql.endswith("WITHOUT ROWID") == (layout == "without-rowid")
        assert conn.execute("SELECT count(*) FROM scans").fetchall()[0][0] == 100
        conn.close()


def test_an_unknown_layout_is_refused(capsys) -> None:
    try:
        btree_in_memory.parse_args(["--layouts", "rowid,columnar"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("accepted an unknown layout")
    assert "unknown layout(s) columnar" in capsys.readouterr().err

