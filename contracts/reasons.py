"""Why a message became a dead letter: the one table of every reason miniscan records.

Owns: `REASON_DESCRIPTIONS`, every machine-readable reason a dead letter can carry, with a line
saying what it means: the decoder's rules in the order it checks them, then the two the
pipeline adds itself (`decoder_error`, `store_rejected`). A reason is stored with the letter
and is a metric label, so it stays short, stable and low-cardinality.

Never: decode, do I/O, or import anything of miniscan: a reason used anywhere is a key here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

DECODER_ERROR = "decoder_error"
STORE_REJECTED = "store_rejected"

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
        "timestamp_in_future": (
            "`timestamp` is more than --max-clock-skew after Pub/Sub received the message "
            "(the scanner's clock is wrong; stored, it would win newest-wins until then)"
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
        # Not the decoder's rules: the pipeline's own last resorts.
        DECODER_ERROR: (
            "the decoder raised something other than a rejection (a bug in miniscan): the "
            "message is kept rather than crashing the decoder on it again and again"
        ),
        STORE_REJECTED: "the database refused the decoded record (isolated from its batch)",
    }
)

ALL_REASONS: frozenset[str] = frozenset(REASON_DESCRIPTIONS)
DECODE_REASONS: frozenset[str] = ALL_REASONS - {DECODER_ERROR, STORE_REJECTED}
