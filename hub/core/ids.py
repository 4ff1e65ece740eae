"""Deterministic ids: the same event and rule always give the same alert, task and notice ids."""

from __future__ import annotations

import hashlib
import uuid

# Fixed forever: ids derived from it must stay the same across versions and restarts.
ID_NAMESPACE = uuid.UUID("6f1c2a8e-5d3b-4b7e-9a51-0c2f4e8d7b13")
_NAMESPACE_BYTES = ID_NAMESPACE.bytes


def stable_id(*parts: str) -> str:
    """uuid5(ID_NAMESPACE, parts joined by U+001F), as text: the same id for the same event and rule.

    Spelled out (RFC 4122 name-based, SHA-1) because uuid.uuid5 and str(UUID) cost 3x more, and
    every alert, task and notification needs one.
    """
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
