"""Table tests for `workers.decode.decode_scan`: one or more cases per rejection reason, and
the accepted forms and normalizations the module docstring promises."""

from __future__ import annotations

import base64
import json
import pickle
from typing import Any

import pytest

from contracts.reasons import DECODER_ERROR, REASON_DESCRIPTIONS, STORE_REJECTED
from contracts.records import ScanRecord
from workers.decode import (
    MAX_PAYLOAD_BYTES,
    MAX_RESPONSE_BYTES,
    MAX_SERVICE_CHARS,
    MAX_TIMESTAMP,
    REASONS,
    Rejection,
    decode_scan,
)
from workers.versions import RESPONSE_DECODERS, decode_v2_response

TIMESTAMP = 1_700_000_000
ABSENT = object()  # marks a field to delete from the base message


def message(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ip": "192.0.2.7",
        "port": 443,
        "service": "https",
        "timestamp": TIMESTAMP,
        "data_version": 2,
        "data": {"response_str": "hello world"},
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not ABSENT}


def encode(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg).encode()


def v1(raw: bytes | str) -> dict[str, Any]:
    encoded = base64.b64encode(raw).decode() if isinstance(raw, bytes) else raw
    return {"data_version": 1, "data": {"response_bytes_utf8": encoded}}


def v2(text: Any) -> dict[str, Any]:
    return {"data_version": 2, "data": {"response_str": text}}


def reject(payload: bytes, **kwargs: Any) -> Rejection:
    with pytest.raises(Rejection) as caught:
        decode_scan(payload, **kwargs)
    return caught.value


REJECTED = [
    # (reason, payload)
    ("too_large", encode(message()) + b" " * MAX_PAYLOAD_BYTES),  # refused before parsing
    ("too_large", encode(message(**v1(b"x" * (MAX_RESPONSE_BYTES + 1))))),
    ("too_large", encode(message(**v1("QUFB" * (MAX_RESPONSE_BYTES // 3 + 2))))),  # pre-decode
    ("too_large", encode(message(**v2("x" * (MAX_RESPONSE_BYTES + 1))))),
    # 2-byte characters: under the cap in characters, over it in UTF-8 bytes
    ("too_large", encode(message(**v2("é" * (MAX_RESPONSE_BYTES // 2 + 1))))),
    ("invalid_json", b""),
    ("invalid_json", b"{"),
    ("invalid_json", encode(message())[:-1]),
    ("invalid_json", encode(message()) + b"{}"),
    ("invalid_json", b'{"ip": NaN}'),
    ("invalid_json", b"\xef\xbb\xbf" + encode(message())),  # UTF-8 BOM
    ("invalid_json", json.dumps(message()).encode("utf-16")),
    ("invalid_json", encode(message(service="http")).replace(b"http", b"\xffhttp")),
    ("invalid_json", encode(message(**v2("\ud800")))),  # lone surrogate escape
    ("invalid_json", b"[" * 5000 + b"]" * 5000),  # stdlib json would raise RecursionError
    ("not_an_object", b"[]"),
    ("not_an_object", b"null"),
    ("not_an_object", b'"{}"'),
    ("not_an_object", b"42"),
    *[
        (f"missing_field:{name}", encode(message(**{name: ABSENT})))
        for name in ("ip", "port", "service", "timestamp", "data_version", "data")
    ],
    ("bad_ip", encode(message(ip=3221225991))),  # ipaddress would take the int
    ("bad_ip", encode(message(ip=None))),
    ("bad_ip", encode(message(ip=["192.0.2.7"]))),
    ("bad_ip", encode(message(ip=""))),
    ("bad_ip", encode(message(ip=" 192.0.2.7"))),
    ("bad_ip", encode(message(ip="192.0.2.7\n"))),
    ("bad_ip", encode(message(ip="192.000.2.7"))),
    ("bad_ip", encode(message(ip="256.0.2.7"))),
    ("bad_ip", encode(message(ip="192.0.2.7/32"))),
    ("bad_ip", encode(message(ip="fe80::1%eth0"))),  # zone id
    ("bad_ip", encode(message(ip="١٩٢.0.2.7"))),  # Arabic-Indic digits
    ("bad_ip", encode(message(ip="1" * 10_000))),
    ("bad_port", encode(message(port=True))),
    ("bad_port", encode(message(port=443.0))),
    ("bad_port", encode(message(port="443"))),
    ("bad_port", encode(message(port=None))),
    ("bad_port", encode(message(port=-1))),
    ("bad_port", encode(message(port=65_536))),
    ("bad_port", encode(message(port=2**70))),  # orjson turns it into a float
    ("bad_service", encode(message(service=""))),
    ("bad_service", encode(message(service=" \t\n"))),
    ("bad_service", encode(message(service=7))),
    ("bad_service", encode(message(service=None))),
    ("bad_service", encode(message(service="X" * (MAX_SERVICE_CHARS + 1)))),
    ("bad_service", encode(message(service="ht\x00tp"))),
    ("bad_service", encode(message(service="ht\x1btp"))),
    ("bad_service", encode(message(service="ht\x7ftp"))),
    ("bad_service", encode(message(service="httpś"))),
    ("bad_timestamp", encode(message(timestamp=float(TIMESTAMP)))),  # whole float: refused
    ("bad_timestamp", encode(message(timestamp=TIMESTAMP + 0.5))),
    ("bad_timestamp", encode(message(timestamp=str(TIMESTAMP)))),
    ("bad_timestamp", encode(message(timestamp=True))),
    ("bad_timestamp", encode(message(timestamp=None))),
    ("bad_timestamp", encode(message(timestamp=-1))),
    ("bad_timestamp", encode(message(timestamp=TIMESTAMP * 1000))),  # milliseconds
    ("bad_timestamp", encode(message(timestamp=MAX_TIMESTAMP + 1))),
    ("unknown_data_version", encode(message(data_version=0))),
    ("unknown_data_version", encode(message(data_version=3))),
    ("unknown_data_version", encode(message(data_version="2"))),
    ("unknown_data_version", encode(message(data_version=2.0))),  # 2.0 == 2 in a dict lookup
    ("unknown_data_version", encode(message(data_version=True))),  # True == 1 likewise
    ("unknown_data_version", encode(message(data_version=None))),
    ("bad_data", encode(message(data=None))),
    ("bad_data", encode(message(data=["hello"]))),
    ("bad_data", encode(message(data="hello world"))),
    ("missing_response", encode(message(data={}))),
    ("missing_response", encode(message(data_version=1))),  # v1 with only response_str
    ("missing_response", encode(message(data={"response_bytes_utf8": "aGk="}))),  # v2
    ("bad_response", encode(message(**v2(None)))),
    ("bad_response", encode(message(**v2(["hello"])))),
    ("bad_response", encode(message(data_version=1, data={"response_bytes_utf8": 12}))),
    ("bad_base64", encode(message(**v1("aGVsbG8gd29ybGQ")))),  # unpadded
    ("bad_base64", encode(message(**v1("aGVsbG8_d29ybGQ-")))),  # URL-safe alphabet
    ("bad_base64", encode(message(**v1("aGVsbG8g d29ybGQ=")))),
    ("bad_base64", encode(message(**v1("aGVsbG8gd29ybGQ=\n")))),
    ("bad_base64", encode(message(**v1("aGVsbG8=aGVsbG8=")))),  # data after padding
    ("bad_base64", encode(message(**v1("aGVsbG8gd29ybGé=")))),  # non-ASCII
    ("bad_utf8", encode(message(**v1(b"banner \xff\xfe")))),
    ("bad_utf8", encode(message(**v1(b"\xed\xa0\x80")))),  # an encoded lone surrogate
    ("bad_utf8", encode(message(**v1(b"\xc0\xaf")))),  # overlong encoding of "/"
]


@pytest.mark.parametrize(("reason", "payload"), REJECTED, ids=[r for r, _ in REJECTED])
def test_rejects_with_its_reason(reason: str, payload: bytes) -> None:
    rejection = reject(payload)
    assert rejection.reason == reason, rejection.detail
    assert rejection.detail
    assert "\n" not in rejection.detail
    assert len(rejection.detail) < 200  # never echoes the input wholesale


def test_every_documented_reason_has_a_table_case_and_no_more() -> None:
    # timestamp_in_future needs a receive time: its cases are in test_decode_clock.py.
    assert {reason for reason, _ in REJECTED} | {"timestamp_in_future"} == REASONS
    assert frozenset(REASON_DESCRIPTIONS) == REASONS | {DECODER_ERROR, STORE_REJECTED}


def test_v2_text_with_a_lone_surrogate_is_bad_utf8_whatever_the_parser() -> None:
    # orjson refuses the escape as invalid_json first; this is the rule behind it.
    with pytest.raises(Rejection) as caught:
        decode_v2_response({"response_str": "ok \udc80"})
    assert caught.value.reason == "bad_utf8"


def test_the_issue_examples_store_hello_world() -> None:
    first = decode_scan(encode(message(**v1("aGVsbG8gd29ybGQ="))))
    second = decode_scan(encode(message(**v2("hello world"))))
    assert first == ScanRecord("192.0.2.7", 443, "HTTPS", TIMESTAMP, "hello world", 1)
    assert second == ScanRecord("192.0.2.7", 443, "HTTPS", TIMESTAMP, "hello world", 2)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:0db8::0001", "2001:db8::1"),
        ("::ffff:192.0.2.7", "192.0.2.7"),  # IPv4-mapped: one key per host
        ("::FFFF:C000:0207", "192.0.2.7"),
        ("::192.0.2.7", "::c000:207"),  # IPv4-compatible is plain IPv6
        ("::", "::"),
    ],
)
def test_ip_is_stored_canonical(given: str, stored: str) -> None:
    assert decode_scan(encode(message(ip=given))).ip == stored


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (" http ", "HTTP"),
        ("\thttps\r\n", "HTTPS"),
        ("Http-Proxy", "HTTP-PROXY"),
        ("http proxy", "HTTP PROXY"),
        ("x" * MAX_SERVICE_CHARS, "X" * MAX_SERVICE_CHARS),
        ("  " + "x" * MAX_SERVICE_CHARS + "  ", "X" * MAX_SERVICE_CHARS),
    ],
)
def test_service_is_stripped_and_upper_cased(given: str, stored: str) -> None:
    assert decode_scan(encode(message(service=given))).service == stored


@pytest.mark.parametrize("port", [0, 1, 65_535])
def test_port_bounds_are_inclusive(port: int) -> None:
    assert decode_scan(encode(message(port=port))).port == port


@pytest.mark.parametrize("timestamp", [0, TIMESTAMP, MAX_TIMESTAMP])
def test_timestamp_bounds_are_inclusive(timestamp: int) -> None:
    assert decode_scan(encode(message(timestamp=timestamp))).timestamp == timestamp


def test_oversized_base64_is_refused_before_it_is_decoded() -> None:
    rejection = reject(encode(message(**v1("QUFB" * (MAX_RESPONSE_BYTES // 3 + 2)))))
    assert "base64 characters" in rejection.detail


def test_millisecond_timestamps_are_named_in_the_detail() -> None:
    assert "milliseconds" in reject(encode(message(timestamp=TIMESTAMP * 1000))).detail


def test_caller_can_tighten_the_timestamp_bound_without_a_clock_in_the_decoder() -> None:
    payload = encode(message(timestamp=TIMESTAMP + 1))
    assert decode_scan(payload, max_timestamp=TIMESTAMP + 1).timestamp == TIMESTAMP + 1
    assert reject(payload, max_timestamp=TIMESTAMP).reason == "bad_timestamp"


@pytest.mark.parametrize("version", sorted(RESPONSE_DECODERS))
def test_responses_at_the_size_cap_are_accepted(version: int) -> None:
    response = "é" * (MAX_RESPONSE_BYTES // 2)  # exactly the cap in UTF-8 bytes
    fields = v1(response.encode()) if version == 1 else v2(response)
    record = decode_scan(encode(message(**fields)))
    assert record.response == response
    assert record.data_version == version


def test_a_payload_exactly_at_the_cap_is_parsed() -> None:
    payload = encode(message())
    padded = payload + b" " * (MAX_PAYLOAD_BYTES - len(payload))
    assert len(padded) == MAX_PAYLOAD_BYTES
    assert decode_scan(padded).response == "hello world"


@pytest.mark.parametrize(
    "response", ["", "\x00binary\x00banner\r\n", "Société Générale — 日本 🚀", "a\ud7ffb"]
)
@pytest.mark.parametrize("version", sorted(RESPONSE_DECODERS))
def test_responses_are_kept_exactly(version: int, response: str) -> None:
    fields = v1(response.encode()) if version == 1 else v2(response)
    assert decode_scan(encode(message(**fields))).response == response


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    msg = message(scanner="zmap-7", data={"response_str": "hi", "tls": {"version": "1.3"}})
    assert decode_scan(encode(msg)).response == "hi"


def test_a_v1_message_ignores_a_stray_response_str() -> None:
    msg = message(data_version=1, data={"response_bytes_utf8": "aGk=", "response_str": "no"})
    assert decode_scan(encode(msg)).response == "hi"


def test_duplicate_keys_the_last_one_wins() -> None:
    payload = encode(message()).replace(b'"port": 443', b'"port": "bad", "port": 443')
    assert payload.count(b'"port"') == 2
    assert decode_scan(payload).port == 443


def test_missing_fields_are_reported_in_the_documented_order() -> None:
    assert reject(b'{"data": {}}').reason == "missing_field:ip"
    assert reject(b'{"ip": "x", "data_version": 9}').reason == "missing_field:port"


def test_a_present_field_is_checked_after_all_fields_are_present() -> None:
    assert reject(encode(message(ip=None, data=ABSENT))).reason == "missing_field:data"


def test_bytearray_is_accepted_and_non_bytes_is_a_programming_error() -> None:
    assert decode_scan(bytearray(encode(message()))).port == 443
    with pytest.raises(TypeError):
        decode_scan(encode(message()).decode())  # type: ignore[arg-type]


def test_rejection_survives_pickling_for_the_trip_to_another_process() -> None:
    original = reject(b"[]")
    copy = pickle.loads(pickle.dumps(original))
    assert (copy.reason, copy.detail) == (original.reason, original.detail)
    assert str(copy) == f"not_an_object: {original.detail}"
