"""The arithmetic of the kept counts both stores share (store.kept_counts): what a batch adds."""

from __future__ import annotations

from store.kept_counts import kept_count_rows


def row(service: str, scanned: int) -> tuple:
    return ("10.0.0.1", 80, service, scanned, "r", 1, scanned)


def test_a_batch_adds_its_new_keys_and_newest_time_per_service_in_service_order() -> None:
    rows = [row("SSH", 5), row("HTTP", 9), row("HTTP", 7), row("DNS", 1)]
    assert kept_count_rows(rows, {"HTTP": 2}) == [("DNS", 0, 1), ("HTTP", 2, 9), ("SSH", 0, 5)]
    assert kept_count_rows([], {}) == []
