"""A scan stamped in the future (issue 25): past `received_at + max_clock_skew_s` it is
`timestamp_in_future`, judged by a pure function of the payload and the times passed in."""

from __future__ import annotations

import json

import pytest

from broker.subscription import PulledMessage
from contracts.durations import parse_duration
from workers.decode import DEFAULT_MAX_CLOCK_SKEW_S, MAX_TIMESTAMP, Rejection, decode_scan
from workers.pulled import decode_pulled

RECEIVED = 1_700_000_000.0
YEAR_2031 = 1_924_992_000  # 2031-01-01T00:00:00Z


def scan(timestamp: int, ip: str = "192.0.2.7") -> bytes:
    return json.dumps({"ip": ip, "port": 443, "service": "https", "timestamp": timestamp,
                       "data_version": 2, "data": {"response_str": "hi"}}).encode()  # fmt: skip


def test_the_default_skew_is_one_hour() -> None:
    assert DEFAULT_MAX_CLOCK_SKEW_S == 3600


@pytest.mark.parametrize("ahead", [-86_400 * 365, 0, 1, 3600])
def test_a_timestamp_up_to_the_skew_after_receipt_is_stored(ahead: int) -> None:
    record = decode_scan(scan(int(RECEIVED) + ahead), received_at=RECEIVED)
    assert record.timestamp == int(RECEIVED) + ahead


def test_one_second_past_the_skew_is_a_dead_letter_naming_both_times() -> None:
    with pytest.raises(Rejection) as caught:
        decode_scan(scan(int(RECEIVED) + 3601), received_at=RECEIVED)
    rejection = caught.value
    assert rejection.reason == "timestamp_in_future"
    assert str(int(RECEIVED) + 3601) in rejection.detail
    assert "2023-11-14T22:13:20Z" in rejection.detail  # the receive time, readable
    assert "2023-11-14T23:13:21Z" in rejection.detail  # the timestamp, readable


def test_the_skew_is_a_parameter() -> None:
    payload = scan(int(RECEIVED) + 120)
    assert decode_scan(payload, received_at=RECEIVED, max_clock_skew_s=120).timestamp
    with pytest.raises(Rejection, match="timestamp_in_future"):
        decode_scan(payload, received_at=RECEIVED, max_clock_skew_s=119)


def test_without_a_receive_time_only_the_fixed_range_applies() -> None:
    assert decode_scan(scan(YEAR_2031)).timestamp == YEAR_2031
    with pytest.raises(Rejection, match="bad_timestamp"):
        decode_scan(scan(MAX_TIMESTAMP + 1), received_at=RECEIVED)  # range first


def test_decode_pulled_judges_by_publish_time_not_by_the_pull_clock() -> None:
    messages = [
        PulledMessage("a-2031", scan(YEAR_2031, "10.0.0.1"), "m1", RECEIVED),
        PulledMessage("a-real", scan(int(RECEIVED) - 5, "10.0.0.2"), "m2", RECEIVED),
        # Published in 2031 (a redelivery judged on a host whose clock is far behind): stored.
        PulledMessage("a-late", scan(YEAR_2031, "10.0.0.3"), "m3", YEAR_2031 - 10.0),
    ]
    batch = decode_pulled(0, messages, received_at=RECEIVED)
    assert [r.ip for r in batch.records] == ["10.0.0.2", "10.0.0.3"]
    (letter,) = batch.dead_letters
    assert (letter.reason, letter.message_id) == ("timestamp_in_future", "m1")
    assert batch.dead_letter_ack_ids == ["a-2031"]


def test_decode_pulled_falls_back_to_the_pull_clock_without_a_publish_time() -> None:
    messages = [PulledMessage("a", scan(YEAR_2031), "m", 0.0)]
    batch = decode_pulled(0, messages, received_at=RECEIVED, max_clock_skew_s=60)
    assert [d.reason for d in batch.dead_letters] == ["timestamp_in_future"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600), ("0", 0), ("90s", 90), ("30m", 1800), ("1h", 3600), ("1h30m", 5400),
     ("2d", 172_800), ("1.5h", 5400), ("250ms", 0.25)],
)  # fmt: skip
def test_a_duration_is_seconds_or_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "1 h", "-1h", "1h-"])
def test_a_bad_duration_says_what_to_give(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "1e999", "infinity"])
def test_a_duration_that_is_not_a_finite_number_is_refused(text):
    from contracts.durations import parse_duration

    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)
