"""Canonical forms of what miniscan stores, shared by the decoders and the readers.

Owns: `canonical_ip`, the one text form an IP address is stored under. The decoders store it
and `miniscan query --ip` looks it up, so both must use this one function.

Never: raise anything but ValueError, do I/O, or know about messages or rejections.
"""

from __future__ import annotations

import functools
import ipaddress


@functools.lru_cache(maxsize=65_536)
def canonical_ip(text: str) -> str:
    """The canonical text of an IP address; ValueError if `text` is not one we accept.

    Cached because parsing is the costliest step of decoding (3 us for IPv4, 8 us for IPv6)
    and a scanner reports several ports per host. 65,536 entries stay under ~15 MB. Invalid
    inputs raise and so are never cached.
    """
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise ValueError("a zone id only means something on the scanning host")
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
    canonical = str(address)
    # Most scanners already send the canonical form: caching the input object itself then
    # keeps one string per entry instead of two.
    return text if canonical == text else canonical
