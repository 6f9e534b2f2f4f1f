"""Why a scan message was refused: the `Rejection` exception and the table of its reasons.

Owns: `Rejection`, the only exception `workers.decode.decode_scan` raises, and
`REASON_DESCRIPTIONS`, the documented list of every machine-readable reason it can carry.
The worker stores the raw payload with that reason in `dead_letters` and acknowledges the
message, so a reason must stay short, stable and low-cardinality (it is a metric label too).

Never: decode anything, do I/O, or build a reason outside this table (tests assert that every
rejection's reason is in `REASONS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# One line per reason, in the order the decoder checks them: the first failing rule wins.
REASON_DESCRIPTIONS: Mapping[str, str] = MappingProxyType(
    {
        "too_large": (
            "the payload exceeds MAX_PAYLOAD_BYTES, or the response exceeds "
            "MAX_RESPONSE_BYTES of UTF-8"
        ),
        "invalid_json": (
            "the payload is not exactly one UTF-8 JSON document (NaN, Infinity, a BOM, "
            "lone surrogate escapes and nesting deeper than 1024 count as invalid)"
        ),
        "not_an_object": "the JSON document is not an object",
        "missing_field:ip": "the top-level field `ip` is absent",
        "missing_field:port": "the top-level field `port` is absent",
        "missing_field:service": "the top-level field `service` is absent",
        "missing_field:timestamp": "the top-level field `timestamp` is absent",
        "missing_field:data_version": "the top-level field `data_version` is absent",
        "missing_field:data": "the top-level field `data` is absent",
        "bad_ip": "`ip` is not a string holding an IPv4 or IPv6 address without a zone id",
        "bad_port": "`port` is not an integer in 0..65535 (booleans and floats are not integers)",
        "bad_service": (
            "`service` is not a string of 1..MAX_SERVICE_CHARS printable ASCII characters "
            "once stripped"
        ),
        "bad_timestamp": (
            "`timestamp` is not an integer of unix seconds in 0..MAX_TIMESTAMP (floats, "
            "milliseconds and far-future values are refused)"
        ),
        "unknown_data_version": "`data_version` is not an integer with a registered decoder",
        "bad_data": "`data` is not an object",
        "missing_response": "`data` lacks the response field of its data_version",
        "bad_response": "the response field is not a string",
        "bad_base64": "v1 `response_bytes_utf8` is not strict, padded, standard-alphabet base64",
        "bad_utf8": (
            "the response is not valid UTF-8 (v1 bytes), or not encodable as UTF-8 "
            "(v2 text with lone surrogates)"
        ),
    }
)

REASONS: frozenset[str] = frozenset(REASON_DESCRIPTIONS)


class Rejection(Exception):
    """A scan message that cannot become a `ScanRecord`, with why.

    `reason` is one of `REASONS`; `detail` is a human-readable one-liner that never echoes
    more than a short preview of the input. Picklable, so it may cross a process boundary.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def preview(value: object) -> str:
    """Describe an offending JSON value in a few dozen characters, on one line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    kind = "string" if isinstance(value, str) else "number"
    text = repr(value)  # repr escapes newlines and control characters: stays one line
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} {text}"
