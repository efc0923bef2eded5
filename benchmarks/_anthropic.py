"""Anthropic Messages API answers for upstream.py, in the wire format of real recordings.

The shapes are copied from /work/shared/fixtures/anthropic-sse/server_tool_use_response.txt
(claude-sonnet-4-5-20250929, the most recent real recording there), with its server-tool
blocks and counters left out: `message_start` (model first, `stop_details`, the usage with
`cache_creation` and `inference_geo`), a text `content_block_start`, `ping` (with the space
after the colon, as recorded), `text_delta`s, `content_block_stop`, `message_delta` with the
stop reason and the cumulative usage, and `message_stop`. The non-streamed Message has the
fields of `message_start`'s message with the content and stop reason filled in.
"""

from __future__ import annotations

import json

MESSAGE_ID = "msg_011BenchUpstream0000000001"
MODEL = "claude-sonnet-4-5-20250929"
INPUT_TOKENS = 24


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def event(name: str, data: bytes) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n\n"


def _usage(output_tokens: int) -> dict[str, object]:
    return {
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
        "inference_geo": "not_available",
    }


def _message(
    content: list[dict[str, object]], stop_reason: str | None, output: int
) -> dict[str, object]:
    return {
        "model": MODEL,
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "stop_details": None,
        "usage": _usage(output),
    }


def message_body(texts: list[str]) -> bytes:
    """A non-streamed Message whose one text block joins `texts` (one output token each)."""
    text: dict[str, object] = {"type": "text", "text": "".join(texts)}
    return _dumps(_message([text], "end_turn", len(texts)))


def opening_events() -> list[bytes]:
    """message_start, the text block's content_block_start and a ping."""
    start = {"type": "message_start", "message": _message([], None, 1)}
    text_block = {"type": "text", "text": ""}
    block = {"type": "content_block_start", "index": 0, "content_block": text_block}
    return [
        event("message_start", _dumps(start)),
        event("content_block_start", _dumps(block)),
        event("ping", b'{"type": "ping"}'),
    ]


def delta_events(texts: list[str]) -> list[bytes]:
    """One content_block_delta (text_delta) per text."""
    events = []
    for text in texts:
        delta = {"type": "content_block_delta", "index": 0,
                 "delta": {"type": "text_delta", "text": text}}  # fmt: skip
        events.append(event("content_block_delta", _dumps(delta)))
    return events


def closing_events(output_tokens: int) -> list[bytes]:
    """content_block_stop, message_delta (stop reason and cumulative usage), message_stop."""
    usage = {
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None, "stop_details": None},
        "usage": usage,
    }
    return [
        event("content_block_stop", _dumps({"type": "content_block_stop", "index": 0})),
        event("message_delta", _dumps(delta)),
        event("message_stop", _dumps({"type": "message_stop"})),
    ]
