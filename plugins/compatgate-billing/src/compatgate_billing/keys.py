"""The virtual key format and how secrets are checked.

A key reads ``sk-cg-<id>-<secret>``: ``<id>`` is 16 lowercase hex digits, the row to look up;
``<secret>`` is 43 random letters and digits (256 bits). The database keeps the id and
``HMAC-SHA256(server secret, "<id>:<secret>")``, never the secret: a stolen database (without
the server secret from the configuration) gives nothing to log in with or to brute-force
offline. Digests are compared with `hmac.compare_digest`.
"""

from __future__ import annotations

import hmac
import re
import secrets
import string
from dataclasses import dataclass

from compatgate import Principal

__all__ = [
    "KEY_PREFIX",
    "KeyPrincipal",
    "digest",
    "format_key",
    "key_hint",
    "new_key_id",
    "new_secret",
    "parse_key",
    "verify",
]

KEY_PREFIX = "sk-cg-"
_ID = re.compile(r"[0-9a-f]{16}")
_SECRET = re.compile(r"[A-Za-z0-9]{43}")
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class KeyPrincipal(Principal):
    """A `Principal` for a virtual key of this plugin: ``key_id`` is the key's id, ``metadata``
    the key's metadata as stored (other plugins read it, e.g. ``metadata["ratelimit"]``);
    ``unlimited`` is True for a key without a budget."""

    unlimited: bool = False


def new_key_id() -> str:
    return secrets.token_hex(8)


def new_secret() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(43))


def format_key(key_id: str, secret: str) -> str:
    return f"{KEY_PREFIX}{key_id}-{secret}"


def key_hint(key_id: str) -> str:
    """How a key is shown once its secret is gone: ``sk-cg-<id>-…``."""
    return f"{KEY_PREFIX}{key_id}-…"


def parse_key(api_key: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a key in this plugin's format, None for any other string."""
    if not api_key.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = api_key[len(KEY_PREFIX) :].partition("-")
    if not sep or not _ID.fullmatch(key_id) or not _SECRET.fullmatch(secret):
        return None
    return key_id, secret


def digest(server_secret: bytes, key_id: str, secret: str) -> str:
    """The stored form of a key: hex HMAC-SHA256 of ``"<id>:<secret>"`` under the server secret."""
    return hmac.digest(server_secret, f"{key_id}:{secret}".encode(), "sha256").hex()


def verify(server_secret: bytes, key_id: str, secret: str, stored: str | None) -> bool:
    """Whether ``secret`` is the key's, comparing digests in constant time."""
    expected = digest(server_secret, key_id, secret)
    return hmac.compare_digest(expected, stored or "0" * len(expected))
