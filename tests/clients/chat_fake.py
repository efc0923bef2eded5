"""A scripted OpenAI-compatible Chat Completions upstream (``POST /chat/completions``,
``GET /models``): what the gateway talks to when it converts another protocol.

Streams are framed like ``shared/fixtures/openai-sse/*.bin``: ``chat.completion.chunk``s (the
first with ``role`` and an empty ``content``), the text in pieces, a tool call opened with its
``id``, ``type`` and name and empty ``arguments`` then argument pieces, a chunk with the
``finish_reason`` and an empty delta, the usage chunk (``choices: []``) when
``stream_options.include_usage`` asks for it, and ``data: [DONE]``.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from starlette.types import Send

from compatgate.testing import Received

from .script import Answer, Turn
from .upstream import ScriptedUpstream, sse_event

__all__ = ["ChatUpstream", "chat_turn"]

_ids = itertools.count(1)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content or []
                     if isinstance(part, dict) and part.get("type") == "text")


def chat_turn(body: dict[str, Any]) -> Turn:
    """The neutral view of a chat request."""
    user: list[str] = []
    results: dict[str, str] = {}
    for message in body.get("messages", []):
        if message.get("role") == "user":
            user.append(_text(message.get("content")))
        elif message.get("role") == "tool":
            results[message.get("tool_call_id", "")] = _text(message.get("content"))
    functions = [t["function"] for t in body.get("tools") or [] if t.get("type") == "function"]
    tools = tuple(f["name"] for f in functions)
    schemas = {f["name"]: f.get("parameters") for f in functions}
    return Turn(tools, "\n".join(user), results, bool(body.get("stream")), body.get("model", ""), schemas)


class ChatUpstream(ScriptedUpstream):
    protocol = "chat"
    model_path = "/chat/completions"
    routes = (("POST", "/chat/completions", "chat"), ("GET", "/models", "models"))

    def turn(self, request: Received) -> Turn:
        return chat_turn(request.json)

    async def models(self, request: Received, send: Send) -> None:
        await self.json(send, {"object": "list", "data": [
            {"id": "gpt-4o-2024-08-06", "object": "model", "created": 1722814719,
             "owned_by": "system"}]})

    async def chat(self, request: Received, send: Send) -> None:
        body = request.json
        turn = chat_turn(body)
        answer = self.script.answer(turn)
        completion_id = f"chatcmpl-Fake{next(_ids):025d}"
        usage = {"prompt_tokens": max(1, len(request.body) // 4), "completion_tokens": 12,
                 "total_tokens": max(1, len(request.body) // 4) + 12,
                 "completion_tokens_details": {"reasoning_tokens": 0}}
        if not turn.stream:
            await self.json(send, self.completion(answer, completion_id, turn.model, usage))
            return
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = self.chunks(answer, completion_id, turn.model, usage if include_usage else None)
        await self.sse(send, events)

    @staticmethod
    def completion(answer: Answer, completion_id: str, model: str,
                   usage: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
        if answer.call:
            message["tool_calls"] = [{"id": answer.call.id, "type": "function", "function": {
                "name": answer.call.name, "arguments": answer.call.arguments_json}}]
        return {"id": completion_id, "object": "chat.completion", "created": int(time.time()),
                "model": model, "system_fingerprint": "fp_fake0001",
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": "tool_calls" if answer.call else "stop"}],
                "usage": usage}

    @staticmethod
    def chunks(answer: Answer, completion_id: str, model: str,
               usage: dict[str, Any] | None) -> list[bytes]:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return sse_event({"id": completion_id, "object": "chat.completion.chunk",
                              "created": created, "model": model,
                              "system_fingerprint": "fp_fake0001",
                              "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                           "finish_reason": finish}]})

        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        text = answer.text
        events += [chunk({"content": text[i:i + 8]}) for i in range(0, len(text), 8)]
        if answer.call:
            opening = {"index": 0, "id": answer.call.id, "type": "function",
                       "function": {"name": answer.call.name, "arguments": ""}}
            events.append(chunk({"tool_calls": [opening]}))
            arguments = answer.call.arguments_json
            events += [chunk({"tool_calls": [{"index": 0, "function": {
                "arguments": arguments[i:i + 7]}}]}) for i in range(0, len(arguments), 7)]
        events.append(chunk({}, "tool_calls" if answer.call else "stop"))
        if usage is not None:
            events.append(sse_event({"id": completion_id, "object": "chat.completion.chunk",
                                     "created": created, "model": model,
                                     "system_fingerprint": "fp_fake0001", "choices": [],
                                     "usage": usage}))
        events.append(b"data: [DONE]\n\n")
        return events
