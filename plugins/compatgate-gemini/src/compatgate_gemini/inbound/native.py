"""Helpers for the native path, where a Gemini client's body goes to a Gemini upstream as is.

- `unwrap_signatures`: a history may hold the gateway's own ``thoughtSignature`` envelopes
  (answers that came through the pivot, e.g. from a Claude model earlier in the conversation,
  or from this model routed another way). Gemini would refuse them as corrupted: an envelope
  made for this model that carries a real Gemini signature gives it back; any other envelope is
  removed, or, on a ``functionCall`` part, replaced by ``skip_thought_signature_validator``
  (Google's documented value for histories without signatures). Other signatures are Gemini's
  own and stay.
- `usage_of`: a ``usageMetadata`` as a `compatgate.Usage` (prompt includes the tool-use
  prompt, completion includes the thoughts, as the OpenAI side counts them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from compatgate import Usage

from ..response import openai_usage
from ..signatures import SKIP_VALIDATOR
from .envelope import Signer, is_envelope, unseal

__all__ = ["unwrap_signatures", "usage_of"]


def unwrap_signatures(body: dict[str, Any], *, model: str, signer: Signer) -> dict[str, Any]:
    """``body`` with the gateway's envelopes resolved (the same object when it holds none)."""
    contents = body.get("contents")
    if not isinstance(contents, list):
        return body
    changed = False
    new_contents = []
    for content in contents:
        parts = content.get("parts") if isinstance(content, Mapping) else None
        if not isinstance(parts, list):
            new_contents.append(content)
            continue
        new_parts = []
        for part in parts:
            signature = part.get("thoughtSignature") if isinstance(part, Mapping) else None
            key = "thoughtSignature"
            if signature is None and isinstance(part, Mapping):
                signature, key = part.get("thought_signature"), "thought_signature"
            if not is_envelope(signature):
                new_parts.append(part)
                continue
            changed = True
            state = unseal(signature, signer, model)
            part = {k: v for k, v in part.items() if k != key}
            if state is not None and state.signature is not None:
                part[key] = state.signature
            elif "functionCall" in part or "function_call" in part:
                part[key] = SKIP_VALIDATOR
            new_parts.append(part)
        new_contents.append({**content, "parts": new_parts})
    return {**body, "contents": new_contents} if changed else body


def usage_of(data: Mapping[str, Any]) -> Usage | None:
    """The usage a Gemini response (or the last event of a stream) reports, if any."""
    meta = data.get("usageMetadata")
    return Usage.from_openai(openai_usage(meta)) if isinstance(meta, Mapping) else None
