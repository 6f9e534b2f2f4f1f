"""The workload builder (`scanner.workload`): its expected table is the one the store keeps,
its default stream is the benchmark's, byte for byte, and its options do what they say.

The builder works the newest-wins rule out on its own (the scanner may not import the
store); the property test below is what holds the two equal.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.workload import Workload, build_workload, rows_wrong
from store.merge import reduce_newest, reduce_rows
from workers.decode import Rejection, decode_scan

# Spellings that decode to the same key, so that one key gets scans from several of them.
IPS = ("10.0.0.1", "::ffff:10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:DB8:0::1")
SERVICES = ("HTTP", "http", " Http ", "SSH")
# U+FFFF < U+10000 in code points and in UTF-8 bytes, but not in UTF-16: a comparison in
# the wrong encoding would pick the other winner.
RESPONSE_CHARS = "ab\u00e9\uffff\U00010000"

scans = st.lists(
    st.tuples(
        st.sampled_from(IPS),
        st.sampled_from((80, 443)),
        st.sampled_from(SERVICES),
        st.integers(1_700_000_000, 1_700_000_003),  # few seconds: many ties
        st.text(alphabet=RESPONSE_CHARS, max_size=3),
        st.sampled_from((1, 2)),
    ),
    max_size=40,
)


def digest(payloads: list[bytes]) -> str:
    return hashlib.sha256(b"".join(payload + b"\n" for payload in payloads)).hexdigest()


def store_table(payloads: list[bytes]) -> dict:
    """The table the store's own rule makes of the decodable payloads."""
    records = []
    for payload in payloads:
        try:
            records.append(decode_scan(payload))
        except Rejection:
            continue
    return {r.key: (r.timestamp, r.response, r.data_version) for r in reduce_newest(records)}


@settings(max_examples=300)
@given(scans=scans)
def test_expected_table_is_the_one_the_store_keeps(scans):
    workload = Workload()
    payloads = [workload.scan(*scan) for scan in scans]
    assert workload.expected == store_table(payloads)
    # and the writer's batch path, which reduces plain tuples instead of records
    records = [decode_scan(payload) for payload in payloads]
    rows = {row[:3]: row[3:6] for row in reduce_rows(records)}
    assert workload.expected == rows


def test_the_benchmark_backlog_is_byte_for_byte_what_it_was():
    # Digests of the backlog bench/e2e.py has published since its figures were first
    # recorded: a change here makes new figures incomparable with bench/RESULTS.md.
    assert digest(build_workload(500, 125).payloads) == (
        "d6640d9e3af9f3b38917a1f5331b93344e7a47f5fd7e46d6bc3a80f5bf87edf7"
    )
    assert digest(build_workload(20_000, 5000).payloads) == (
        "5c83e3e42c6b22ea7d3b9203870d4e88dda07cf9961b4579b6a69e2603bb1614"
    )


def test_backlog_matches_its_description_and_its_expected_table():
    backlog = build_workload(4000, 1000, seed=3)
    assert len(backlog.payloads) == 4000
    assert backlog.duplicates == 80  # 2%
    assert 0.08 * 4000 <= backlog.out_of_order <= 0.12 * 4000
    assert backlog.ties == backlog.poison == 0
    records = [decode_scan(payload) for payload in backlog.payloads]
    assert 0.45 < sum(r.data_version == 1 for r in records) / len(records) < 0.55
    table = store_table(backlog.payloads)
    assert len(table) == 1000
    assert rows_wrong(backlog.expected, table) == 0
    # and the comparison is not blind: one stale row and one stray row are two wrong rows
    stale_key = next(iter(table))
    table[stale_key] = (0, "stale", 1)
    table[("192.0.2.1", 1, "X")] = (1, "stray", 2)
    assert rows_wrong(backlog.expected, table) == 2


def test_options_add_ties_lower_case_services_and_poison():
    workload = build_workload(3000, 500, seed=7, ties=0.05, lower_case=0.2, poison=9)
    assert len(workload.payloads) == 3000 + 9
    rejected = [p for p in workload.payloads if p.startswith(b"not json")]
    assert len(rejected) == workload.poison == 9
    assert rows_wrong(workload.expected, store_table(workload.payloads)) == 0
    sent = [json.loads(p) for p in workload.payloads if p not in rejected]
    assert 0.1 < sum(scan["service"].islower() for scan in sent) / len(sent) < 0.3
    # Ties that the tie rules really decide: a key whose newest second holds two scans
    # with different (response, data_version).
    newest: dict[tuple, set] = defaultdict(set)
    for record in map(decode_scan, (p for p in workload.payloads if p not in rejected)):
        if record.timestamp == workload.expected[record.key][0]:
            newest[record.key].add((record.response, record.data_version))
    assert workload.ties > 50
    assert sum(len(contenders) > 1 for contenders in newest.values()) > 10


def test_options_left_off_leave_the_stream_alone():
    assert build_workload(300, 60, seed=5).payloads == build_workload(300, 60, seed=5).payloads
    assert build_workload(300, 60, ties=0.0, lower_case=0.0).payloads == (
        build_workload(300, 60).payloads
    )
