"""Conventions by which the pivot (Chat Completions, through which every protocol converts)
carries what another protocol needs back on the next turn.

A Gemini ``thoughtSignature`` travels as Google's own OpenAI-compatible endpoint carries it, so
clients written for that endpoint work unchanged: ``"extra_content": {"google":
{"thought_signature": "..."}}`` on each tool call whose ``functionCall`` part carried a
signature, and on the assistant message (or stream delta) for the signature of a text part. A
client that sends the assistant message back as it received it sends the signatures back too.
Every plugin that converts to or from the pivot reads and writes it through these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["thought_signature", "with_thought_signature"]


def thought_signature(source: Any) -> str | None:
    """The Gemini thought signature ``source`` (a tool call, message or delta) carries, if any."""
    if not isinstance(source, Mapping):
        return None
    extra = source.get("extra_content")
    google = extra.get("google") if isinstance(extra, Mapping) else None
    signature = google.get("thought_signature") if isinstance(google, Mapping) else None
    return signature if isinstance(signature, str) and signature else None


def with_thought_signature(target: dict[str, Any], signature: str) -> dict[str, Any]:
    """``target`` (a tool call, message or delta) carrying ``signature``."""
    target["extra_content"] = {"google": {"thought_signature": signature}}
    return target
