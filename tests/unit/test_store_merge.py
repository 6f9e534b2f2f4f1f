"""The newest-wins rule: in memory (store.merge) and in SQL (store.sqlite.writer), and that
the final table is a pure function of the set of messages (hypothesis)."""

from __future__ import annotations

import os
import random
import tempfile

import apsw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.records import ScanRecord
from store.merge import reduce_newest, reduce_rows
from store.sqlite.writer import ScanStore


def scan(ts: int = 100, response: str = "r", v: int = 1, *, ip: str = "10.0.0.1",
         port: int = 80, service: str = "HTTP") -> ScanRecord:  # fmt: skip
    return ScanRecord(ip, port, service, ts, response, v)


def test_greater_timestamp_wins_in_either_order() -> None:
    old, new = scan(ts=100, response="zzz"), scan(ts=101, response="aaa")
    assert reduce_newest([old, new]) == [new]
    assert reduce_newest([new, old]) == [new]


def test_equal_timestamps_greater_response_wins() -> None:
    low, high = scan(response="HTTP/1.0"), scan(response="HTTP/1.1")
    assert reduce_newest([low, high]) == [high]
    assert reduce_newest([high, low]) == [high]


def test_equal_timestamp_and_response_greater_data_version_wins() -> None:
    v1, v2 = scan(v=1), scan(v=2)
    assert reduce_newest([v2, v1]) == [v2]
    assert reduce_newest([v1, v2]) == [v2]


def test_reduction_keeps_one_record_per_key_and_the_earliest_timestamp() -> None:
    records = [scan(ts=50), scan(ts=70, port=443), scan(ts=30), scan(ts=40)]
    assert sorted(reduce_rows(records)) == [
        ("10.0.0.1", 80, "HTTP", 50, "r", 1, 30),
        ("10.0.0.1", 443, "HTTP", 70, "r", 1, 70),
    ]
    assert sorted(r.port for r in reduce_newest(records)) == [80, 443]


def test_empty_input_reduces_to_nothing() -> None:
    assert reduce_newest([]) == []


# Small domains on purpose: collisions of key, timestamp and response are the cases that
# matter. The texts mix code points of every UTF-8 length, NUL and the empty string, because
# SQLite compares UTF-8 bytes where Python compares code points.
# The sampled texts are drawn three times as often as free text, so that equal responses
# (the data_version tie-break) come up often.
SAMPLED_TEXTS = st.sampled_from(["", "a", "a\x00", "a\x00b", "é", "\uffff", "\U00010000"])
TEXTS = st.one_of(
    SAMPLED_TEXTS,
    SAMPLED_TEXTS,
    SAMPLED_TEXTS,
    st.text(st.characters(exclude_categories=("Cs",)), max_size=3),
)
RECORDS = st.builds(
    ScanRecord,
    ip=st.sampled_from(["10.0.0.1", "::1"]),
    port=st.sampled_from([22, 80]),
    service=st.sampled_from(["HTTP", "SSH"]),
    timestamp=st.integers(0, 2),
    response=TEXTS,
    data_version=st.integers(1, 2),
)


def expected_table(records: list[ScanRecord]) -> set[tuple]:
    """The specification, written independently of store.merge: per key, the maximum of
    (timestamp, response, data_version) and the minimum timestamp."""
    keys = {(r.ip, r.port, r.service) for r in records}
    table = set()
    for key in keys:
        same = [r for r in records if (r.ip, r.port, r.service) == key]
        ts, response, version = max((r.timestamp, r.response, r.data_version) for r in same)
        table.add((*key, ts, response, version, min(r.timestamp for r in same)))
    return table


def stored_table(path: str) -> set[tuple]:
    conn = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return set(
            conn.execute(
                "SELECT ip, port, service, last_scanned, response, data_version, first_seen"
                " FROM scans"
            )
        )
    finally:
        conn.close()


def write_in_batches(path: str, batches: list[list[ScanRecord]]) -> None:
    # synchronous=OFF: durability is not what this test is about, speed is welcome.
    with ScanStore.open(path, synchronous="OFF") as store:
        for batch in batches:
            store.write_batch(batch)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(RECORDS, max_size=25), seed=st.integers(0, 2**32 - 1))
def test_table_is_a_pure_function_of_the_set_of_messages(
    records: list[ScanRecord], seed: int
) -> None:
    rng = random.Random(seed)
    # Another delivery of the same set: shuffled, some messages twice, split anywhere.
    redelivered = records + rng.choices(records, k=len(records) // 2) if records else []
    rng.shuffle(redelivered)
    cuts = sorted(rng.sample(range(len(redelivered) + 1), k=min(3, len(redelivered) + 1)))
    batches = [redelivered[a:b] for a, b in zip([0, *cuts], [*cuts, len(redelivered)], strict=True)]
    # One record per batch, in both directions, makes the SQL upsert (not the in-memory
    # reduction) decide between every pair of records, each way round.
    singles = [[record] for record in redelivered]
    with tempfile.TemporaryDirectory() as folder:
        want = expected_table(records)
        splits = {"one": [records], "many": batches, "singles": singles, "back": singles[::-1]}
        for name, split in splits.items():
            path = os.path.join(folder, f"{name}.db")
            write_in_batches(path, split)
            assert stored_table(path) == want, name


@settings(max_examples=150, deadline=None)
@given(records=st.lists(RECORDS, max_size=25))
def test_in_memory_reductions_match_the_specification(records: list[ScanRecord]) -> None:
    want = expected_table(records)
    assert set(reduce_rows(records)) == want
    newest = {(r.ip, r.port, r.service, r.timestamp, r.response, r.data_version)
              for r in reduce_newest(records)}  # fmt: skip
    assert newest == {row[:6] for row in want}
