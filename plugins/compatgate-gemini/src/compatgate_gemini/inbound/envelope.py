"""Gateway-signed ``thoughtSignature`` envelopes: opaque upstream state carried by Gemini clients.

Gemini clients keep the parts of a model turn and send them back, ``thoughtSignature``
included, byte for byte (the google-genai SDKs decode it as base64 bytes and encode it again).
When the answer came from another upstream through the OpenAI pivot, the state that upstream
needs on the next turn rides in that field instead:

- Anthropic ``thinking_blocks`` (thinking text and its signature, redacted blocks);
- ``reasoning_content`` of a turn that called tools (reasoning models that want it back within
  a tool loop);
- a real Gemini signature from ``extra_content.google.thought_signature`` (of the tool call
  whose ``functionCall`` part carries the envelope, or of the message's text).

The envelope is ``base64(PREFIX + signer.sign(zlib(json)))``: the payload is compressed JSON
``{"m": model, "t": [...], "r": "...", "g": "..."}``, signed by the gateway's `Signer`, so a
client can neither forge nor alter it. `unseal` returns None for anything else (a real Gemini
signature, Gemini CLI's ``skip_thought_signature_validator``, a foreign or tampered value):
such signatures are dropped, never an error. State is restored only for the model that
produced it, so one upstream's fields never reach another after a model switch.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

__all__ = ["PREFIX", "Signer", "State", "is_envelope", "seal", "unseal"]

PREFIX = b"compatgate.1:"
_MAX_SIGNATURE = 4 * 1024 * 1024  # characters of one thoughtSignature we try to open
_MAX_PAYLOAD = 16 * 1024 * 1024  # bytes of one decompressed payload


class Signer(Protocol):
    """Signs and verifies the gateway's envelopes (an HMAC keyed by a gateway secret).

    ``sign(payload)`` returns a token that carries ``payload``; ``verify(token)`` returns the
    payload of a token this signer made, None for any other string (never raises)."""

    def sign(self, payload: bytes) -> str: ...

    def verify(self, token: str) -> bytes | None: ...


@dataclass(slots=True)
class State:
    """What one envelope carries (every field optional)."""

    model: str = ""
    thinking_blocks: list[dict[str, Any]] = field(default_factory=list)
    reasoning: str | None = None
    signature: str | None = None  # a real Gemini thoughtSignature

    @property
    def empty(self) -> bool:
        return not self.thinking_blocks and self.reasoning is None and self.signature is None


def seal(state: State, signer: Signer) -> str:
    """The ``thoughtSignature`` value carrying ``state``."""
    payload: dict[str, Any] = {"m": state.model}
    if state.thinking_blocks:
        payload["t"] = state.thinking_blocks
    if state.reasoning is not None:
        payload["r"] = state.reasoning
    if state.signature is not None:
        payload["g"] = state.signature
    token = signer.sign(zlib.compress(orjson.dumps(payload)))
    return base64.b64encode(PREFIX + token.encode("ascii")).decode("ascii")


def _decode(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value or len(value) > _MAX_SIGNATURE:
        return None
    try:  # the SDKs may re-encode the bytes with either base64 alphabet
        raw = base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_").rstrip("=") + "==")
    except (binascii.Error, ValueError):
        return None
    return raw if raw.startswith(PREFIX) else None


def is_envelope(value: Any) -> bool:
    """Whether ``value`` has the form of a gateway envelope (whoever signed it)."""
    return _decode(value) is not None


def unseal(value: Any, signer: Signer, model: str) -> State | None:
    """The state of a gateway envelope made for ``model``; None for any other value."""
    raw = _decode(value)
    if raw is None:
        return None
    try:
        payload = signer.verify(raw[len(PREFIX):].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if payload is None:
        return None
    try:
        inflater = zlib.decompressobj()
        data = orjson.loads(inflater.decompress(payload, _MAX_PAYLOAD))
    except (zlib.error, orjson.JSONDecodeError):
        return None
    if inflater.unconsumed_tail or not isinstance(data, Mapping) or data.get("m") != model:
        return None
    state = State(model=model)
    blocks = data.get("t")
    if isinstance(blocks, list):
        state.thinking_blocks = [dict(b) for b in blocks if isinstance(b, Mapping)]
    if isinstance(data.get("r"), str):
        state.reasoning = data["r"]
    if isinstance(data.get("g"), str):
        state.signature = data["g"]
    return state
