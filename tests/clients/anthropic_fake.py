"""A scripted Anthropic Messages upstream (``/v1/messages``, ``count_tokens``, ``/v1/models``).

Streams are framed exactly like the recordings in ``shared/fixtures/anthropic-sse/``:
``message_start``, a text block (``content_block_start``, ``ping``, ``text_delta``s,
``content_block_stop``), for a tool call a ``tool_use`` block whose input arrives as
``input_json_delta`` pieces (the first one empty), ``message_delta`` with the stop reason and
output tokens, ``message_stop``.
"""

from __future__ import annotations

import itertools
from typing import Any

from starlette.types import Send

from compatgate.testing import Received

from .script import Answer, Turn
from .upstream import ScriptedUpstream, sse_event

__all__ = ["AnthropicUpstream", "anthropic_turn"]

_ids = itertools.count(1)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(block.get("text", "") for block in content or []
                     if block.get("type") == "text")


def anthropic_turn(body: dict[str, Any]) -> Turn:
    """The neutral view of a Messages request."""
    results: dict[str, str] = {}
    user: list[str] = []
    for message in body.get("messages", []):
        if message.get("role") != "user":
            continue
        user.append(_text(message.get("content")))
        if isinstance(message.get("content"), list):
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    results[block.get("tool_use_id", "")] = _text(block.get("content"))
    tools = tuple(t["name"] for t in body.get("tools") or [] if "name" in t)
    schemas = {t["name"]: t["input_schema"] for t in body.get("tools") or [] if "input_schema" in t}
    return Turn(tools, "\n".join(user), results, bool(body.get("stream")), body.get("model", ""), schemas)


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class AnthropicUpstream(ScriptedUpstream):
    protocol = "anthropic"
    model_path = "/messages"
    routes = (
        ("POST", "/messages/count_tokens", "count_tokens"),
        ("POST", "/messages", "messages"),
        ("GET", "/models", "models"),
    )

    def presented_key(self, request: Received) -> str | None:
        return request.headers.get("x-api-key") or super().presented_key(request)

    async def error(self, send: Send, status: int, message: str) -> None:
        kind = {401: "authentication_error", 404: "not_found_error"}.get(status, "api_error")
        await self.json(send, {"type": "error", "error": {"type": kind, "message": message}},
                        status)

    def turn(self, request: Received) -> Turn:
        return anthropic_turn(request.json)

    async def count_tokens(self, request: Received, send: Send) -> None:
        await self.json(send, {"input_tokens": max(1, len(request.body) // 4)})

    async def models(self, request: Received, send: Send) -> None:
        model = {"type": "model", "id": "claude-sonnet-4-20250514",
                 "display_name": "Claude Sonnet 4", "created_at": "2025-05-22T00:00:00Z"}
        await self.json(send, {"data": [model], "has_more": False,
                               "first_id": model["id"], "last_id": model["id"]})

    async def messages(self, request: Received, send: Send) -> None:
        body = request.json
        turn = anthropic_turn(body)
        answer = self.script.answer(turn)
        message_id = f"msg_01Fake{next(_ids):020d}"
        input_tokens = max(1, len(request.body) // 4)
        if turn.stream:
            await self.sse(send, self.stream_events(answer, message_id, turn.model, input_tokens))
        else:
            await self.json(send, self.message(answer, message_id, turn.model, input_tokens))

    @staticmethod
    def content(answer: Answer) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": answer.text}]
        if answer.call:
            blocks.append({"type": "tool_use", "id": answer.call.id, "name": answer.call.name,
                           "input": answer.call.arguments})
        return blocks

    def message(self, answer: Answer, message_id: str, model: str,
                input_tokens: int) -> dict[str, Any]:
        return {"id": message_id, "type": "message", "role": "assistant", "model": model,
                "content": self.content(answer),
                "stop_reason": "tool_use" if answer.call else "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0, "output_tokens": 12,
                          "service_tier": "standard"}}

    @staticmethod
    def stream_events(answer: Answer, message_id: str, model: str,
                      input_tokens: int) -> list[bytes]:
        start: dict[str, Any] = {
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 1,
                      "service_tier": "standard"}}
        events = [
            sse_event({"type": "message_start", "message": start}, "message_start"),
            sse_event({"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}, "content_block_start"),
            b'event: ping\ndata: {"type": "ping"}\n\n',
        ]
        for piece in _pieces(answer.text, 8):
            events.append(sse_event({"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": piece}},
                                    "content_block_delta"))
        events.append(sse_event({"type": "content_block_stop", "index": 0}, "content_block_stop"))
        if answer.call:
            block = {"type": "tool_use", "id": answer.call.id, "name": answer.call.name,
                     "input": {}}
            events.append(sse_event({"type": "content_block_start", "index": 1,
                                     "content_block": block}, "content_block_start"))
            for piece in ["", *_pieces(answer.call.arguments_json, 7)]:
                delta = {"type": "input_json_delta", "partial_json": piece}
                events.append(sse_event({"type": "content_block_delta", "index": 1,
                                         "delta": delta}, "content_block_delta"))
            events.append(sse_event({"type": "content_block_stop", "index": 1},
                                    "content_block_stop"))
        stop = "tool_use" if answer.call else "end_turn"
        events.append(sse_event({"type": "message_delta",
                                 "delta": {"stop_reason": stop, "stop_sequence": None},
                                 "usage": {"output_tokens": 12}}, "message_delta"))
        events.append(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        return events
