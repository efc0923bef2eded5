"""What the tests of the inbound direction (serving the Anthropic Messages API) share: an HMAC
signer, the recorded OpenAI streams as pivot chunks, an SSE parser for what the encoder emits,
and a checker of Anthropic event sequences (spec schemas and semantics)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable
from typing import Any

import orjson
from anthropic_support import SHARED

from compatgate.testing import OpenAISchema

OPENAI_RECORDINGS_DIR = SHARED / "fixtures" / "openai-sse"
OPENAI_RECORDINGS = sorted(p.name for p in OPENAI_RECORDINGS_DIR.glob("*.bin"))


class HmacSigner:
    """HMAC-SHA256 tokens: ``base64url(payload) "." base64url(mac)``."""

    def __init__(self, key: bytes = b"test-gateway-secret") -> None:
        self.key = key

    def sign(self, payload: bytes) -> str:
        mac = hmac.new(self.key, payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(mac)}"

    def verify(self, token: str) -> bytes | None:
        encoded, _, mac = token.partition(".")
        try:
            payload = _unb64(encoded)
            expected = hmac.new(self.key, payload, hashlib.sha256).digest()
            return payload if hmac.compare_digest(expected, _unb64(mac)) else None
        except ValueError:
            return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def openai_chunks(name: str) -> list[dict[str, Any]]:
    """The chunks of a recorded OpenAI stream, up to ``[DONE]``."""
    chunks = []
    for line in (OPENAI_RECORDINGS_DIR / name).read_bytes().split(b"\n"):
        if line.startswith(b"data: ") and line[6:] != b"[DONE]":
            chunks.append(orjson.loads(line[6:]))
    return chunks


def parse_events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """``(event name, payload)`` of every event in an Anthropic SSE byte stream (strict framing:
    an ``event:`` line and one ``data:`` line, blank line after)."""
    events = []
    assert data == b"" or data.endswith(b"\n\n"), data[-80:]
    for block in re.split(rb"\n\n", data)[:-1]:
        lines = block.split(b"\n")
        assert len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), block
        name, payload = lines[0][7:].decode(), orjson.loads(lines[1][6:])
        assert payload["type"] == name, (name, payload)
        events.append((name, payload))
    return events


_SCHEMAS = {
    "message_start": "MessageStartEvent",
    "content_block_start": "ContentBlockStartEvent",
    "content_block_delta": "ContentBlockDeltaEvent",
    "content_block_stop": "ContentBlockStopEvent",
    "message_delta": "MessageDeltaEvent",
    "message_stop": "MessageStopEvent",
    "ping": "Ping",
    "error": "ErrorResponse",
}


def check_events(events: Iterable[tuple[str, dict[str, Any]]], schema: OpenAISchema, *,
                 complete: bool = True) -> dict[str, Any]:
    """Validate every event against the spec and the sequence against Anthropic's rules; the
    message the events build (content with tool inputs parsed, stop reason, usage).

    Rules: ``message_start`` first and once; blocks indexed 0, 1, 2... started once, one open at
    a time, deltas of the block's kind only to the open block, stopped once; a thinking block
    gets exactly one signature; ``message_delta`` after every block stopped, then
    ``message_stop`` last (``complete``), or an ``error`` last and no ``message_stop``."""
    message: dict[str, Any] | None = None
    open_index: int | None = None
    buffers: dict[int, str] = {}
    signatures: dict[int, int] = {}
    ended = False
    truncated = False
    events = list(events)
    for position, (name, event) in enumerate(events):
        schema.validate(_SCHEMAS[name], event)
        assert not ended, f"event after the end: {name}"
        if name == "ping":
            continue
        if name == "error":
            assert position == len(events) - 1, "an error event must be the last"
            assert not complete
            ended = True
            continue
        if name == "message_start":
            assert message is None and position == 0, "message_start must come first, once"
            message = {**event["message"], "content": [], "usage": dict(event["message"]["usage"])}
            assert message["usage"]["input_tokens"] > 0, "message_start must carry non-zero input tokens"
            continue
        assert message is not None, f"{name} before message_start"
        if name == "content_block_start":
            assert open_index is None, "a block started while another is open"
            assert event["index"] == len(message["content"]), "block indexes must be 0, 1, 2..."
            open_index = event["index"]
            message["content"].append(dict(event["content_block"]))
            buffers[open_index] = ""
        elif name == "content_block_delta":
            assert event["index"] == open_index, "a delta for a block that is not open"
            block, delta = message["content"][open_index], event["delta"]
            kinds = {"text": ("text_delta",), "thinking": ("thinking_delta", "signature_delta"),
                     "tool_use": ("input_json_delta",)}
            assert delta["type"] in kinds[block["type"]], (block["type"], delta["type"])
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                signatures[open_index] = signatures.get(open_index, 0) + 1
                block["signature"] = delta["signature"]
            else:
                buffers[open_index] += delta["partial_json"]
        elif name == "content_block_stop":
            assert event["index"] == open_index, "content_block_stop for a block that is not open"
            block = message["content"][open_index]
            if block["type"] == "thinking":
                assert signatures.get(open_index) == 1, "a thinking block needs exactly one signature"
            if block["type"] == "tool_use":
                try:
                    block["input"] = orjson.loads(buffers[open_index]) if buffers[open_index] else {}
                except orjson.JSONDecodeError:
                    block["input"] = None  # cut short: only a max_tokens stop may do that
                    truncated = True
            open_index = None
        elif name == "message_delta":
            assert open_index is None, "message_delta while a block is open"
            assert message.get("stop_reason") is None, "message_delta twice"
            message.update(stop_reason=event["delta"]["stop_reason"], stop_sequence=event["delta"]["stop_sequence"])
            message["usage"].update({k: v for k, v in event["usage"].items() if v is not None})
        elif name == "message_stop":
            assert message.get("stop_reason") is not None, "message_stop without message_delta"
            ended = True
    if complete:
        assert ended and events[-1][0] == "message_stop", "a complete stream ends with message_stop"
    assert message is not None
    if truncated and complete:
        assert message["stop_reason"] == "max_tokens", "tool input JSON cut short without a max_tokens stop"
    return message
