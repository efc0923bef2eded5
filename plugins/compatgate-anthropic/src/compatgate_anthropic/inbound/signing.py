"""Thinking blocks the gateway signs, and the upstream state they carry across turns.

An upstream reached through chat completions returns reasoning and opaque state that the next
turn needs back: ``reasoning_content``, the ``thinking_blocks`` of this plugin (Anthropic's own
signed blocks) and Gemini's ``thought_signature`` on tool calls (``extra_content.google``) or
on the message. An Anthropic client only sends back what the Messages API has: ``thinking``
blocks with a ``signature``. So the gateway packs that state into the signature of the thinking
blocks it returns (`seal`), signed by a `Signer` keyed by a secret of the gateway, and unpacks
it from the blocks the client sends back (`unseal`).

The payload binds the thinking text (a SHA-256 digest) and the model the answer came from: a
block whose text was edited, whose signature does not verify, or that comes back on a request
for another model is dropped, as Anthropic drops thinking blocks of another model.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

__all__ = ["Signer", "ThinkingState", "seal", "unseal"]

_VERSION = 1


class Signer(Protocol):
    """Signs payloads with a secret of the gateway. ``verify`` returns the payload a token
    carries when ``sign`` made it, and None for any other string (it never raises)."""

    def sign(self, payload: bytes) -> str: ...

    def verify(self, token: str) -> bytes | None: ...


@dataclass(slots=True)
class ThinkingState:
    """The opaque upstream state of one assistant turn.

    ``blocks``: ``thinking_blocks`` entries (``thinking`` with its signature, or
    ``redacted_thinking``); ``tools``: Gemini thought signatures by upstream tool call id;
    ``message``: the Gemini thought signature of the text (``extra_content`` on the message).
    """

    blocks: list[dict[str, Any]] = field(default_factory=list)
    tools: dict[str, str] = field(default_factory=dict)
    message: str | None = None

    def __bool__(self) -> bool:
        return bool(self.blocks or self.tools or self.message)

    def merge(self, other: ThinkingState) -> None:
        self.blocks.extend(other.blocks)
        self.tools.update(other.tools)
        self.message = other.message or self.message


def seal(signer: Signer, *, model: str, thinking: str, state: ThinkingState) -> str:
    """The signature of a thinking block with text ``thinking`` carrying ``state``."""
    payload: dict[str, Any] = {"v": _VERSION, "m": model, "h": _digest(thinking)}
    if state.blocks:
        payload["b"] = state.blocks
    if state.tools:
        payload["t"] = state.tools
    if state.message:
        payload["s"] = state.message
    return signer.sign(orjson.dumps(payload))


def unseal(signer: Signer, signature: object, *, model: str, thinking: object) -> ThinkingState | None:
    """The state a thinking block carries, or None when the gateway did not sign it, its text
    changed or it belongs to another model."""
    if not isinstance(signature, str) or not signature or not isinstance(thinking, str):
        return None
    try:
        payload = signer.verify(signature)
        data = orjson.loads(payload) if payload is not None else None
    except (ValueError, TypeError):
        return None
    if not isinstance(data, Mapping) or data.get("v") != _VERSION:
        return None
    if data.get("m") != model or data.get("h") != _digest(thinking):
        return None
    blocks = data.get("b", [])
    tools = data.get("t", {})
    message = data.get("s")
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        return None
    if not isinstance(tools, dict) or not all(isinstance(v, str) for v in tools.values()):
        return None
    return ThinkingState(blocks, tools, message if isinstance(message, str) else None)


def _digest(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
