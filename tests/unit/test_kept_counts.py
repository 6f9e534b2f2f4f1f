"""The arithmetic of the kept counts both stores share (store.kept_counts): what a batch adds,
what a reader makes of the table, and which stats figures are exact."""

from __future__ import annotations

from store.kept_counts import (
    SCAN_FIGURES,
    FullRead,
    KeptCounts,
    kept_count_rows,
    read_kept_counts,
    scan_figures,
)


def row(service: str, scanned: int) -> tuple:
    return ("10.0.0.1", 80, service, scanned, "r", 1, scanned)


def test_a_batch_adds_its_new_keys_and_newest_time_per_service_in_service_order() -> None:
    rows = [row("SSH", 5), row("HTTP", 9), row("HTTP", 7), row("DNS", 1)]
    assert kept_count_rows(rows, {"HTTP": 2}) == [("DNS", 0, 1), ("HTTP", 2, 9), ("SSH", 0, 5)]
    assert kept_count_rows([], {}) == []


def test_readers_sum_the_slots_and_skip_services_left_without_rows() -> None:
    # (service, rows over all slots, newest, slots whose newest is unknown)
    kept = read_kept_counts([("HTTP", 5, 90, 0), ("SSH", 5, 120, 0), ("DNS", 0, None, 2)])
    assert kept == KeptCounts(10, [("HTTP", 5), ("SSH", 5)], 120, True)
    assert read_kept_counts([]) == KeptCounts(0, [], None, True)


def test_an_unknown_newest_time_of_a_service_with_rows_makes_the_newest_unknown() -> None:
    kept = read_kept_counts([("HTTP", 3, 90, 1), ("SSH", 1, 120, 0)])
    assert (kept.rows, kept.newest_scan, kept.newest_known) == (4, None, False)


def test_scan_figures_say_what_is_exact_estimated_or_not_read() -> None:
    kept = KeptCounts(10, [("HTTP", 6), ("SSH", 4)], 120, True)
    quick = scan_figures(kept, 1, ips_estimate=7)
    assert quick["services"] == [("HTTP", 6)]
    assert (quick["distinct_ips"], quick["oldest_scan"], quick["data_versions"]) == (None,) * 3
    assert quick["exact"] == ("scan_rows", "newest_scan", "services")
    assert quick["estimates"] == {"distinct_ips": 7}
    unknown = scan_figures(KeptCounts(10, [], None, False), 10)
    assert unknown["exact"] == ("scan_rows", "services") and unknown["estimates"] == {}
    full = scan_figures(kept, 10, FullRead(8, 3, 120, [(1, 10)]), ips_estimate=7)
    assert full["exact"] == SCAN_FIGURES and full["estimates"] == {}
    assert (full["distinct_ips"], full["oldest_scan"], full["data_versions"]) == (8, 3, [(1, 10)])
