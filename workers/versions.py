"""The per-`data_version` response decoders, registered in one place.

Owns: turning a message's `data` object into the response text, one small pure function per
wire version, and `RESPONSE_DECODERS`, the registry `workers.decode` dispatches on. Adding a
version means writing one function here and adding one line to the registry (plus a table
test); nothing else changes.

Both versions end in the same rules, so the store never sees a difference:
- the response is measured in UTF-8 bytes and refused as `too_large` above
  `MAX_RESPONSE_BYTES` (1 MiB: banners and HTML pages fit with room to spare, and one message
  can never make a decoder hold more than a few copies of that);
- the response must be valid Unicode that encodes to UTF-8. Invalid UTF-8 in v1 is
  dead-lettered as `bad_utf8` rather than stored with U+FFFD replacements: the dead letter
  keeps the raw payload byte for byte, so nothing is lost, and the table never holds text
  that silently differs from what the scanner saw.
- an empty response is valid (a port that accepted the connection and said nothing).

Version 1, `data.response_bytes_utf8`: base64 of the response's UTF-8 bytes, decoded strictly
(RFC 4648 section 4): standard alphabet, `=` padding required, no whitespace, nothing after
the padding. The URL-safe alphabet and unpadded input are refused as `bad_base64`: the wire
format names one encoding, and a scanner that drifts from it should be seen, not guessed at.

Version 2, `data.response_str`: the response text itself.

Never: parse JSON, look at top-level fields, do I/O, or raise anything but `Rejection`.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from workers.rejections import Rejection, preview

MAX_RESPONSE_BYTES = 1024 * 1024
# The longest base64 text that can decode to at most MAX_RESPONSE_BYTES (+2 padding slack):
# checked before decoding so an oversized response is refused without allocating it.
MAX_BASE64_CHARS = 4 * -(-MAX_RESPONSE_BYTES // 3)

ResponseDecoder = Callable[[dict[str, Any]], str]


def decode_v1_response(data: dict[str, Any]) -> str:
    """Version 1: `response_bytes_utf8` is base64 of the response's UTF-8 bytes."""
    encoded = _response_field(data, "response_bytes_utf8")
    if len(encoded) > MAX_BASE64_CHARS:
        raise _too_large(f"{len(encoded)} base64 characters")
    try:
        # strict_mode is what base64.b64decode(validate=True) applies too, minus its wrapper.
        raw = binascii.a2b_base64(encoded, strict_mode=True)
    except ValueError as exc:  # binascii.Error, or non-ASCII characters in the text
        raise Rejection("bad_base64", f"response_bytes_utf8 is not strict base64: {exc}") from None
    if len(raw) > MAX_RESPONSE_BYTES:
        raise _too_large(f"{len(raw)} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejection(
            "bad_utf8", f"response bytes are not UTF-8 at byte {exc.start}: {exc.reason}"
        ) from None


def decode_v2_response(data: dict[str, Any]) -> str:
    """Version 2: `response_str` is the response text itself."""
    text = _response_field(data, "response_str")
    if text.isascii():  # O(1) in CPython: the common case skips the encode below
        size = len(text)
    else:
        # orjson already refuses lone surrogate escapes; this keeps the rule true whatever
        # parser produced `data`, because SQLite could not bind such a string later.
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise Rejection(
                "bad_utf8", f"response_str has a lone surrogate at index {exc.start}"
            ) from None
    if size > MAX_RESPONSE_BYTES:
        raise _too_large(f"{size} bytes")
    return text


# The one place versions are registered. Keys are plain ints: decode.py checks the JSON
# value's type first, because True == 1 and 1.0 == 1 would otherwise find version 1.
RESPONSE_DECODERS: Mapping[int, ResponseDecoder] = MappingProxyType(
    {
        1: decode_v1_response,
        2: decode_v2_response,
    }
)


def _response_field(data: dict[str, Any], name: str) -> str:
    try:
        value = data[name]
    except KeyError:
        raise Rejection("missing_response", f"data has no {name!r}") from None
    if type(value) is not str:
        raise Rejection("bad_response", f"{name} must be a string, got {preview(value)}")
    return value


def _too_large(size: str) -> Rejection:
    return Rejection("too_large", f"response is {size}, above the {MAX_RESPONSE_BYTES}-byte cap")
