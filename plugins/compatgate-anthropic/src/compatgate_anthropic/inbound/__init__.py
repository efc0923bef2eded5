"""The Anthropic Messages API served to clients (``POST /messages``,
``POST /messages/count_tokens``) for any upstream: the protocol pieces, pure and synchronous.

The gateway's core does HTTP, authentication, routing, billing, SSE framing and timeouts, and
calls these:

- `validate` / `validate_count_tokens` (converted path) and `validate_native` (relayed to an
  ``anthropic`` upstream): `InvalidRequestError` with Anthropic-style messages;
- `to_chat`: the request -> a chat completions request (the pivot), as a `Conversion` that
  also names what could not be carried (server tools, fields, blocks, thinking);
- `from_chat`: a ``chat.completion`` -> an Anthropic ``Message``;
- `MessageStream`: ``chat.completion.chunk`` objects -> Anthropic stream events;
- `error_body` / `error_event`: any `GatewayError` in Anthropic's error format;
- `count_tokens_estimate` / `count_tokens_answer`: the local token estimate;
- `strip_gateway_thinking`: a body for an ``anthropic`` upstream, without the thinking blocks
  this gateway signed (Anthropic would refuse their signatures);
- `Signer`: what signs the thinking blocks (an HMAC keyed by a gateway secret).

See the plugin's README, "Serving the Anthropic API", for every mapping and its limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ANTHROPIC_TYPES, anthropic_error, error_body, error_event
from .ids import tool_id, upstream_tool_id
from .reply import from_chat, message_usage
from .request import Conversion, budget_effort, to_chat
from .signing import Signer, ThinkingState, seal, unseal
from .stream import MessageStream
from .tokens import count_tokens_answer, count_tokens_estimate
from .validation import validate, validate_count_tokens, validate_native

__all__ = [
    "ANTHROPIC_TYPES",
    "Conversion",
    "MessageStream",
    "Signer",
    "ThinkingState",
    "anthropic_error",
    "budget_effort",
    "count_tokens_answer",
    "count_tokens_estimate",
    "error_body",
    "error_event",
    "from_chat",
    "message_usage",
    "seal",
    "strip_gateway_thinking",
    "to_chat",
    "tool_id",
    "unseal",
    "upstream_tool_id",
    "validate",
    "validate_count_tokens",
    "validate_native",
]


def strip_gateway_thinking(body: Mapping[str, Any], signer: Signer) -> dict[str, Any]:
    """``body`` without the thinking blocks whose signature ``signer`` verifies (made by this
    gateway for a converted answer), for a conversation that moves to an ``anthropic``
    upstream: Anthropic would refuse those signatures. Other blocks are kept as they are."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return dict(body)
    kept: list[Any] = []
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, list):
            blocks = [b for b in content if not _ours(b, signer)]
            if len(blocks) != len(content):
                message = {**message, "content": blocks}
        kept.append(message)
    return {**body, "messages": kept}


def _ours(block: Any, signer: Signer) -> bool:
    if not isinstance(block, Mapping) or block.get("type") != "thinking":
        return False
    signature = block.get("signature")
    try:
        return isinstance(signature, str) and signer.verify(signature) is not None
    except (ValueError, TypeError):
        return False
