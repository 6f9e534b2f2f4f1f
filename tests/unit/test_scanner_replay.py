"""Replaying a JSON-lines file: good lines go out byte for byte, bad ones are reported."""

from __future__ import annotations

import pytest

from scanner import replay
from scanner.replay import MalformedLine

GOOD_V1 = (
    b'{"ip":"1.1.1.1","port":80,"service":"HTTP","timestamp":1700000000,'
    b'"data_version":1,"data":{"response_bytes_utf8":"c2VydmljZSByZXNwb25zZTogNDI="}}'
)
GOOD_V2 = (
    b'{"ip": "1.1.1.2", "port": 22, "service": "SSH", "timestamp": 1700000001, '
    b'"data_version": 2, "data": {"response_str": "service response: 7"}}'
)
# Values are the decoders' business: a fixture may carry a bad port on purpose.
BAD_PORT_BUT_WELL_FORMED = GOOD_V2.replace(b'"port": 22', b'"port": 99999')


def replay_lines(lines: list[bytes]) -> tuple[list[bytes], list[MalformedLine]]:
    reports: list[MalformedLine] = []
    payloads = list(replay.replay_payloads(lines, reports.append))
    return payloads, reports


def test_well_formed_lines_are_published_exactly_as_written():
    lines = [GOOD_V1 + b"\n", GOOD_V2 + b"\r\n", BAD_PORT_BUT_WELL_FORMED]
    payloads, reports = replay_lines(lines)
    assert payloads == [GOOD_V1, GOOD_V2, BAD_PORT_BUT_WELL_FORMED]
    assert reports == []


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"ip": "1.1.1.1", "port": 80', "not valid JSON"),
        (b"not json at all", "not valid JSON (Expecting value at column 1)"),
        (b"[1, 2, 3]", "a JSON list, not an object"),
        (b'"a string"', "a JSON str, not an object"),
        (
            b'{"ip": "1.1.1.1", "port": 80, "service": "HTTP"}',
            "missing timestamp, data_version, data",
        ),
        (b'{"ip": "\xff\xfe"}', "not UTF-8"),
    ],
)
def test_a_malformed_line_is_reported_with_its_number_and_skipped(line, reason):
    payloads, reports = replay_lines([GOOD_V1, b"", line, GOOD_V2])
    assert payloads == [GOOD_V1, GOOD_V2]
    assert [r.line_number for r in reports] == [3]
    assert reason in reports[0].reason
    assert reports[0].describe().startswith("line 3: ")


def test_blank_lines_are_skipped_without_a_report():
    payloads, reports = replay_lines([b"\n", b"   \n", GOOD_V1, b"\r\n"])
    assert payloads == [GOOD_V1]
    assert reports == []


def test_a_bad_line_is_reported_before_the_next_payload_is_yielded():
    events: list[object] = []
    payloads = replay.replay_payloads([GOOD_V1, b"{", GOOD_V2], events.append)
    for payload in payloads:
        events.append(payload)
    assert len(events) == 3
    assert events[0] == GOOD_V1
    assert isinstance(events[1], MalformedLine)
    assert events[1].line_number == 2
    assert events[2] == GOOD_V2


def test_replay_file_reads_a_file_lazily(tmp_path):
    path = tmp_path / "scans.jsonl"
    path.write_bytes(GOOD_V1 + b"\n{oops\n" + GOOD_V2 + b"\n")
    reports: list[MalformedLine] = []
    assert list(replay.replay_file(str(path), reports.append)) == [GOOD_V1, GOOD_V2]
    assert [r.line_number for r in reports] == [2]
