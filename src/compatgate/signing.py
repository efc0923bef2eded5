"""`Signer`: what the gateway signs so that it can trust it when a client sends it back.

Protocol conversions hand clients opaque state that the next turn must return unchanged (the
upstream's reasoning and thought signatures, packed into an Anthropic ``thinking`` block's
signature or a Gemini ``thoughtSignature``); the gateway signs it with HMAC-SHA256 and restores
only what verifies. The key is ``[gateway] secret``; without one it is derived from the
upstream credentials (the same in every worker and after a restart, unknown to clients), and
with no credentials at all it is random per process (signatures then last as long as it does).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable

__all__ = ["Signer"]

_MAC = 16  # bytes of HMAC-SHA256 kept: 128 bits


class Signer:
    """Signs payloads as ``<base64url payload>.<base64url mac>`` and verifies them."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_gateway(cls, secret: str | None, credentials: Iterable[str]) -> Signer:
        """The signer of a gateway: its ``secret``, else a key derived from ``credentials``
        (sorted, so their order does not matter), else a random key."""
        if secret:
            return cls(hashlib.sha256(b"compatgate-signing\0" + secret.encode()).digest())
        material = sorted(set(credentials))
        if material:
            return cls(hashlib.sha256(b"compatgate-signing\0" + "\0".join(material).encode()).digest())
        return cls(secrets.token_bytes(32))

    def sign(self, payload: bytes) -> str:
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC]
        return f"{_b64(payload)}.{_b64(mac)}"

    def verify(self, token: str) -> bytes | None:
        """The payload of a token this signer made; None for anything else."""
        body, dot, mac = token.rpartition(".")
        if not dot:
            return None
        try:
            payload, given = _unb64(body), _unb64(mac)
        except ValueError:
            return None
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC]
        return payload if hmac.compare_digest(given, expected) else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
