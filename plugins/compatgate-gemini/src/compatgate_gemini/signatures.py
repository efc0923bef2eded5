"""Where a Gemini ``thoughtSignature`` travels in the OpenAI messages.

The convention is the one of Google's own OpenAI-compatible endpoint, so clients written for it
work unchanged: ``"extra_content": {"google": {"thought_signature": "..."}}`` on each tool call
whose ``functionCall`` part carried a signature, and on the assistant message (or stream
delta) for the signature of a text part. A client that sends the assistant message back as it
received it sends the signatures back with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SKIP_VALIDATOR", "attach", "read"]

# Documented by Google for histories that lack signatures (e.g. made by another model): Gemini
# then skips the check instead of refusing the request.
SKIP_VALIDATOR = "skip_thought_signature_validator"


def attach(target: dict[str, Any], signature: str) -> dict[str, Any]:
    """``target`` (a tool call, message or delta) carrying ``signature``."""
    target["extra_content"] = {"google": {"thought_signature": signature}}
    return target


def read(source: Any) -> str | None:
    """The signature ``source`` carries, if any."""
    if not isinstance(source, Mapping):
        return None
    extra = source.get("extra_content")
    google = extra.get("google") if isinstance(extra, Mapping) else None
    signature = google.get("thought_signature") if isinstance(google, Mapping) else None
    return signature if isinstance(signature, str) and signature else None
