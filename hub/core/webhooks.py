"""Standard Webhooks signatures (https://www.standardwebhooks.com, spec 1.0): the signer's side.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; each active secret gives one
`v1,<base64 HMAC-SHA256>`, space-separated in `webhook-signature`, so a receiver in the middle of
a rotation accepts either. Secrets are `whsec_` + base64 of at least 24 random bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime

PREFIX = "whsec_"
SECRET_BYTES = 32


class Secret:
    """A signing key. Its repr, str and format never show the key (logs, errors, tracebacks)."""

    __slots__ = ("_key",)

    def __init__(self, text: str) -> None:
        if not text.startswith(PREFIX):
            raise ValueError("a webhook secret starts with whsec_")
        self._key = base64.b64decode(text[len(PREFIX) :] + "==")
        if len(self._key) < 24:
            raise ValueError("a webhook secret holds at least 24 bytes")

    def sign(self, content: bytes) -> str:
        return "v1," + base64.b64encode(hmac.new(self._key, content, hashlib.sha256).digest()).decode()

    def __repr__(self) -> str:
        return "Secret('whsec_**********')"

    __str__ = __repr__


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signed_headers(message_id: str, at: datetime, body: bytes, keys: Sequence[Secret]) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, signed by every active key."""
    timestamp = str(int(at.timestamp()))
    content = f"{message_id}.{timestamp}.".encode() + body
    return {
        "webhook-id": message_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": " ".join(key.sign(content) for key in keys),
    }
