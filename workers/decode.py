"""Decode one raw scan message into a `ScanRecord`, or refuse it with a `Rejection`.

Owns: `decode_scan(payload) -> ScanRecord`, a pure function (bytes in, record or typed
rejection out) and the validation and normalization rules of the top-level fields. The
per-version response decoders live in `workers.versions`, the reasons in `workers.rejections`.

Never: touch Pub/Sub, SQLite, the clock or the filesystem; raise anything but `Rejection` for
any bytes whatsoever (a hypothesis fuzz test holds it to that).

Wire format: `{"ip", "port", "service", "timestamp", "data_version", "data": {...}}`, one
UTF-8 JSON object. Checks run in this order and the first failure is the reason:
size, JSON, object, each required field present (in the order above), then each field's
value in the same order, then the response. The rules, and the decisions the issue left open:

- Size: a payload above `MAX_PAYLOAD_BYTES` (4 MiB) is `too_large` before any parsing. It is
  four times `MAX_RESPONSE_BYTES` so that a 1 MiB response still fits after base64 (x4/3) or
  heavy JSON escaping; a response escaped past that is refused too. Pub/Sub allows 10 MB.
- JSON: parsed by orjson (measured ~10x the stdlib on these messages, see
  bench/decode_bench.py), which is also stricter in ways we want: UTF-8 only, no BOM, no
  NaN/Infinity, no lone surrogate escapes, nesting capped at 1024 (the stdlib would raise
  RecursionError). Integers beyond 64 bits come back as floats and so fail the integer rules.
  Duplicate keys: the last one wins, as in every mainstream parser; finding them would cost a
  hook per object for a producer bug we have no evidence of. Unknown top-level fields and
  unknown fields inside `data` are ignored, so producers can add fields before we read them.
- `null` counts as a present field with a wrong value (`bad_port`, ...), not a missing one.
- `ip`: a JSON string (ipaddress would also take ints and packed bytes; we do not) holding an
  IPv4 or IPv6 address, stored as `str(ipaddress.ip_address(...))`, with two exceptions:
  IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is stored as the IPv4 address, so one host has one key
  (and because Python 3.13 changed how it prints mapped addresses, which would split keys on
  upgrade); addresses with a zone id (`fe80::1%eth0`) are `bad_ip`, since a zone only means
  something on the scanning host. No whitespace stripping: `" 1.2.3.4"` is `bad_ip`.
- `port`: a JSON integer 0..65535; `true`, `80.0` and `"80"` are `bad_port`.
- `service`: a JSON string, stripped, then 1..`MAX_SERVICE_CHARS` (64) printable ASCII
  characters (0x20..0x7E, so inner spaces are fine), stored upper-cased. ASCII only because
  services are protocol labels: it rules out control characters, look-alike letters that
  would make distinct keys, and keys that change when Python's Unicode tables do.
- `timestamp`: a JSON integer of unix seconds in 0..`max_timestamp`. Floats are refused,
  even `1700000000.0`: mainstream encoders write whole numbers without a fraction, so a float
  means a producer is sending `time.time()`, and accepting only the whole ones would let that
  bug through now and then instead of showing it. The upper bound defaults to
  `MAX_TIMESTAMP` (2100-01-01T00:00:00Z): it refuses millisecond values (now ~1.7e12) and far
  future values that would otherwise win newest-wins for that key forever. Because this
  function reads no clock, a caller that wants a tighter bound passes
  `max_timestamp=int(time.time()) + allowed_skew` from the edge.
- Clocks (issue 25): given `received_at` (when Pub/Sub received the message), a timestamp
  more than `max_clock_skew_s` after it is `timestamp_in_future`: one scan from a host whose
  clock says 2031 would otherwise win newest-wins for its key until 2031. Checked after the
  range, so milliseconds still read as `bad_timestamp`.
- `data_version`: a JSON integer registered in `workers.versions.RESPONSE_DECODERS`;
  anything else is `unknown_data_version`. `data` must be an object (`bad_data`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson

from contracts.canonical import canonical_ip
from contracts.records import ScanRecord
from workers.rejections import REASONS, Rejection, preview
from workers.versions import MAX_RESPONSE_BYTES, RESPONSE_DECODERS

__all__ = [
    "DEFAULT_MAX_CLOCK_SKEW_S",
    "MAX_PAYLOAD_BYTES",
    "MAX_RESPONSE_BYTES",
    "MAX_SERVICE_CHARS",
    "MAX_TIMESTAMP",
    "REASONS",
    "Rejection",
    "canonical_ip",
    "decode_scan",
]

MAX_PAYLOAD_BYTES = 4 * MAX_RESPONSE_BYTES
MAX_SERVICE_CHARS = 64
MAX_TIMESTAMP = 4_102_444_800  # 2100-01-01T00:00:00Z
DEFAULT_MAX_CLOCK_SKEW_S = 3600.0
# Above this a timestamp is almost surely milliseconds (1e11 s is the year 5138): said in the
# rejection detail so the producer's bug is obvious from the dead letter.
_LOOKS_LIKE_MILLISECONDS = 100_000_000_000
# Canonical dotted-quad IPv4 (no leading zeros, octets <= 255, ASCII digits only) is its own
# canonical form: matching it takes 0.2 us against 2.7 us for ipaddress, and IPv4 is most of
# the traffic. Measured in bench/decode_bench.py, every IP distinct: 113k -> 173k msgs/s.
# A property test holds it equal to ipaddress's canonical text on every input it accepts.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_match_canonical_ipv4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}").fullmatch
# The longest IPv6 text without a zone id ("ffff:...:255.255.255.255") is 45 characters.
_MAX_IP_CHARS = 45


def decode_scan(
    payload: bytes,
    *,
    max_timestamp: int = MAX_TIMESTAMP,
    received_at: float | None = None,
    max_clock_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S,
) -> ScanRecord:
    """Decode and normalize one scan message; raise `Rejection` when it cannot be stored.

    `payload` must be `bytes` or `bytearray` (passing anything else is a programming error
    and raises TypeError); for every such value the only exception is `Rejection`.
    `received_at` (unix seconds; None: no clock check) bounds the timestamp at
    `received_at + max_clock_skew_s`.
    """
    if not isinstance(payload, bytes | bytearray):
        raise TypeError(f"decode_scan takes bytes, got {type(payload).__name__}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejection(
            "too_large", f"payload is {len(payload)} bytes, above the {MAX_PAYLOAD_BYTES} cap"
        )
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise Rejection("invalid_json", str(exc)) from None
    if type(message) is not dict:
        raise Rejection("not_an_object", f"the JSON document is {preview(message)}")
    try:
        # Read in the documented order: the first absent field is the one reported.
        raw_ip = message["ip"]
        raw_port = message["port"]
        raw_service = message["service"]
        raw_timestamp = message["timestamp"]
        raw_version = message["data_version"]
        data = message["data"]
    except KeyError as missing:
        field = missing.args[0]
        raise Rejection(f"missing_field:{field}", f"required field {field!r} is absent") from None
    ip = _validate_ip(raw_ip)
    port = _validate_port(raw_port)
    service = _normalize_service(raw_service)
    timestamp = _validate_timestamp(raw_timestamp, max_timestamp)
    if received_at is not None and timestamp > received_at + max_clock_skew_s:
        raise Rejection("timestamp_in_future", _future_detail(timestamp, received_at))
    decode_response = RESPONSE_DECODERS.get(raw_version) if type(raw_version) is int else None
    if decode_response is None:
        raise Rejection(
            "unknown_data_version",
            f"data_version {preview(raw_version)} is not one of {sorted(RESPONSE_DECODERS)}",
        )
    if type(data) is not dict:
        raise Rejection("bad_data", f"data must be an object, got {preview(data)}")
    # By position: keywords cost a NamedTuple twice as much to build, once per message.
    return ScanRecord(ip, port, service, timestamp, decode_response(data), raw_version)


def _validate_ip(value: Any) -> str:
    if type(value) is not str or len(value) > _MAX_IP_CHARS:
        raise Rejection("bad_ip", f"ip must be an IP address string, got {preview(value)}")
    if _match_canonical_ipv4(value) is not None:
        return value
    try:
        return canonical_ip(value)
    except ValueError as exc:
        raise Rejection("bad_ip", f"ip {preview(value)} is not accepted: {exc}") from None


def _validate_port(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= 65_535:
        raise Rejection("bad_port", f"port must be an integer in 0..65535, got {preview(value)}")
    return value


def _normalize_service(value: Any) -> str:
    if type(value) is not str:
        raise Rejection("bad_service", f"service must be a string, got {preview(value)}")
    service = value.strip()
    if not 0 < len(service) <= MAX_SERVICE_CHARS:
        raise Rejection(
            "bad_service",
            f"service must be 1..{MAX_SERVICE_CHARS} characters once stripped, got {len(service)}",
        )
    if not (service.isascii() and service.isprintable()):
        raise Rejection("bad_service", f"service must be printable ASCII, got {preview(service)}")
    return service.upper()


def _future_detail(timestamp: int, received_at: float) -> str:
    return (
        f"timestamp {timestamp} ({_utc(timestamp)}) is {timestamp - received_at:.0f}s after the "
        f"message was received at {received_at:.0f} ({_utc(received_at)})"
    )


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _validate_timestamp(value: Any, max_timestamp: int) -> int:
    if type(value) is not int:
        raise Rejection(
            "bad_timestamp", f"timestamp must be integer unix seconds, got {preview(value)}"
        )
    if not 0 <= value <= max_timestamp:
        hint = " (milliseconds?)" if value >= _LOOKS_LIKE_MILLISECONDS else ""
        raise Rejection("bad_timestamp", f"timestamp {value} is outside 0..{max_timestamp}{hint}")
    return value
