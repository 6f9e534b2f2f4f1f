"""Property tests for `workers.decode.decode_scan`: nothing but `Rejection` escapes, whatever
the bytes; what it accepts always satisfies the record's invariants; valid messages round-trip."""

from __future__ import annotations

import base64
import ipaddress
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.records import ScanRecord
from workers.decode import (
    MAX_RESPONSE_BYTES,
    MAX_SERVICE_CHARS,
    MAX_TIMESTAMP,
    REASONS,
    Rejection,
    decode_scan,
)
from workers.versions import RESPONSE_DECODERS

FIELDS = ("ip", "port", "service", "timestamp", "data_version", "data")
RESPONSE_FIELDS = ("response_bytes_utf8", "response_str")
FUZZ = settings(max_examples=300, deadline=None)

# Text that may hold lone surrogates and control characters, which json.dumps escapes.
any_text = st.text(st.characters(exclude_categories=()), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
service_names = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=MAX_SERVICE_CHARS
).filter(str.strip)


def decode_or_rejection(payload: bytes) -> ScanRecord | Rejection:
    try:
        return decode_scan(payload)
    except Rejection as rejection:
        return rejection


def assert_is_record_or_known_rejection(result: ScanRecord | Rejection) -> None:
    if isinstance(result, Rejection):
        assert result.reason in REASONS
        assert result.detail and "\n" not in result.detail
        return
    assert type(result) is ScanRecord
    assert type(result.ip) is str and "%" not in result.ip
    assert str(ipaddress.ip_address(result.ip)) == result.ip
    assert type(result.port) is int and 0 <= result.port <= 65_535
    assert type(result.service) is str
    assert 0 < len(result.service) <= MAX_SERVICE_CHARS
    assert result.service == result.service.strip().upper()
    assert result.service.isascii() and result.service.isprintable()
    assert type(result.timestamp) is int and 0 <= result.timestamp <= MAX_TIMESTAMP
    assert type(result.response) is str
    assert len(result.response.encode("utf-8")) <= MAX_RESPONSE_BYTES
    assert type(result.data_version) is int and result.data_version in RESPONSE_DECODERS


@st.composite
def valid_messages(draw: st.DrawFn) -> tuple[dict[str, Any], ScanRecord]:
    """A valid message in a non-canonical spelling, with the record it must decode to."""
    address = draw(st.ip_addresses())
    spelling = draw(st.sampled_from((str, lambda a: a.exploded, lambda a: str(a).upper())))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        expected_ip = str(address.ipv4_mapped)
    else:
        expected_ip = str(address)
    service = draw(service_names)
    padding = draw(st.sampled_from(("", " ", "\t", " \r\n")))
    response = draw(st.text(max_size=40))
    version = draw(st.sampled_from(sorted(RESPONSE_DECODERS)))
    if version == 1:
        data = {"response_bytes_utf8": base64.b64encode(response.encode()).decode()}
    else:
        data = {"response_str": response}
    record = ScanRecord(
        ip=expected_ip,
        port=draw(st.integers(0, 65_535)),
        service=service.strip().upper(),
        timestamp=draw(st.integers(0, MAX_TIMESTAMP)),
        response=response,
        data_version=version,
    )
    msg = {
        "ip": spelling(address),
        "port": record.port,
        "service": padding + service + padding,
        "timestamp": record.timestamp,
        "data_version": version,
        "data": data,
    }
    return msg, record


@st.composite
def messages_with_wrong_values(draw: st.DrawFn) -> dict[str, Any]:
    """A valid message with some fields (and response fields) dropped or replaced."""
    msg, _ = draw(valid_messages())
    for name in FIELDS:
        action = draw(st.sampled_from(("keep", "keep", "drop", "replace")))
        if action == "drop":
            del msg[name]
        elif action == "replace":
            msg[name] = draw(json_values)
    if isinstance(msg.get("data"), dict):
        for name in RESPONSE_FIELDS:
            if draw(st.booleans()):
                msg["data"][name] = draw(json_values)
    if draw(st.booleans()):
        msg[draw(any_text)] = draw(json_values)  # unknown or duplicate-named fields
    return msg


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_only_ever_raise_rejection(payload: bytes) -> None:
    assert_is_record_or_known_rejection(decode_or_rejection(payload))


@FUZZ
@given(valid_messages(), st.data())
def test_corrupted_valid_payloads_only_ever_raise_rejection(
    valid: tuple[dict[str, Any], ScanRecord], data: st.DataObject
) -> None:
    payload = bytearray(json.dumps(valid[0]).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(payload) - 1))
        match data.draw(st.sampled_from(("flip", "delete", "insert"))):
            case "flip":
                payload[position] = data.draw(st.integers(0, 255))
            case "delete":
                del payload[position]
            case "insert":
                payload[position:position] = data.draw(st.binary(min_size=1, max_size=3))
    assert_is_record_or_known_rejection(decode_or_rejection(bytes(payload)))


@FUZZ
@given(messages_with_wrong_values(), st.booleans())
def test_wrong_types_in_any_field_only_ever_raise_rejection(
    msg: dict[str, Any], ensure_ascii: bool
) -> None:
    payload = json.dumps(msg, ensure_ascii=ensure_ascii, allow_nan=True)
    assert_is_record_or_known_rejection(decode_or_rejection(payload.encode(errors="surrogatepass")))


@FUZZ
@given(json_values)
def test_any_json_document_only_ever_raises_rejection(document: Any) -> None:
    assert_is_record_or_known_rejection(decode_or_rejection(json.dumps(document).encode()))


@FUZZ
@given(valid_messages(), st.booleans())
def test_valid_messages_decode_to_the_normalized_record(
    valid: tuple[dict[str, Any], ScanRecord], ensure_ascii: bool
) -> None:
    msg, record = valid
    assert decode_scan(json.dumps(msg, ensure_ascii=ensure_ascii).encode()) == record


@settings(max_examples=500, deadline=None)
@given(
    st.from_regex(r"\A[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}\Z")
    | st.text("0123456789.:abcdefABCDEF%x ", max_size=45)
    | st.ip_addresses(v=4).map(str)
)
def test_ip_text_is_accepted_exactly_when_ipaddress_accepts_it(text: str) -> None:
    # Holds the IPv4 fast path and the cache to the plain ipaddress rules.
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        address = None  # zone ids are refused by design
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    msg = {"ip": text, "port": 1, "service": "x", "timestamp": 1, "data_version": 2}
    result = decode_or_rejection(json.dumps({**msg, "data": {"response_str": ""}}).encode())
    if address is None:
        assert isinstance(result, Rejection) and result.reason == "bad_ip"
    else:
        assert isinstance(result, ScanRecord) and result.ip == str(address)
