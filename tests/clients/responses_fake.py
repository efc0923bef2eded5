"""A scripted OpenAI Responses upstream (``POST /responses``, ``GET /models``).

Streams are the event sequence OpenAI sends (each ``event:`` line named like the ``type``,
``sequence_number`` from 0): ``response.created``, ``response.in_progress``; for the text a
``message`` item (``response.output_item.added``, ``response.content_part.added``,
``response.output_text.delta``s, ``response.output_text.done``, ``response.content_part.done``,
``response.output_item.done``); for a tool call a ``function_call`` item
(``response.output_item.added``, ``response.function_call_arguments.delta``s,
``response.function_call_arguments.done``, ``response.output_item.done``), or for a freeform
tool a ``custom_tool_call`` item (``response.custom_tool_call_input.delta``s and ``.done``); then
``response.completed`` with the whole response and its usage.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from starlette.types import Send

from compatgate.testing import Received

from .script import Answer, Turn
from .upstream import ScriptedUpstream, sse_event

__all__ = ["ResponsesUpstream", "responses_turn"]

_ids = itertools.count(1)
_RESULT_TYPES = ("function_call_output", "custom_tool_call_output", "local_shell_call_output")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content or []
                     if isinstance(part, dict) and "text" in part)


def _tool_names(tools: list[dict[str, Any]]) -> list[str]:
    names = []
    for tool in tools:
        if "name" in tool:
            names.append(tool["name"])
        if tool.get("type") == "namespace":
            names += [f"{tool.get('name')}.{t.get('name')}" for t in tool.get("tools") or []]
        if tool.get("type") in ("local_shell", "web_search", "web_search_preview"):
            names.append(tool["type"])
    return names


def responses_turn(body: dict[str, Any]) -> Turn:
    """The neutral view of a Responses request."""
    items = body.get("input")
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    user: list[str] = []
    results: dict[str, str] = {}
    for item in items or []:
        if item.get("type") in _RESULT_TYPES:
            results[item.get("call_id", "")] = _text(item.get("output"))
        elif item.get("role") == "user":
            user.append(_text(item.get("content")))
    tools = tuple(_tool_names(body.get("tools") or []))
    return Turn(tools, "\n".join(user), results, bool(body.get("stream")), body.get("model", ""))


class ResponsesUpstream(ScriptedUpstream):
    protocol = "responses"
    model_path = "/responses"
    routes = (("POST", "/responses", "responses"), ("GET", "/models", "models"))

    def turn(self, request: Received) -> Turn:
        return responses_turn(request.json)

    async def models(self, request: Received, send: Send) -> None:
        await self.json(send, {"object": "list", "data": [
            {"id": "gpt-5-codex", "object": "model", "created": 1700000000, "owned_by": "openai"}]})

    async def responses(self, request: Received, send: Send) -> None:
        body = request.json
        turn = responses_turn(body)
        answer = self.script.answer(turn)
        number = next(_ids)
        if turn.stream:
            await self.sse(send, self.stream_events(answer, body, number))
        else:
            await self.json(send, self.response(answer, body, number, "completed"))

    @staticmethod
    def items(answer: Answer, number: int) -> list[dict[str, Any]]:
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": answer.text}
        items: list[dict[str, Any]] = [
            {"id": f"msg_{number:032x}", "type": "message", "status": "completed",
             "content": [part], "role": "assistant"}]
        call = answer.call
        if call and call.freeform is not None:
            items.append({"id": f"ctc_{number:032x}", "type": "custom_tool_call",
                          "call_id": call.id, "name": call.name, "input": call.freeform})
        elif call:
            items.append({"id": f"fc_{number:032x}", "type": "function_call",
                          "status": "completed", "arguments": call.arguments_json,
                          "call_id": call.id, "name": call.name})
        return items

    @staticmethod
    def response(answer: Answer | None, body: dict[str, Any], number: int,
                 status: str) -> dict[str, Any]:
        done = answer is not None and status == "completed"
        output = ResponsesUpstream.items(answer, number) if done and answer else []
        response = {
            "id": f"resp_{number:040x}", "object": "response", "created_at": int(time.time()),
            "status": status, "background": False, "error": None, "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": None,
            "model": body.get("model"), "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": None, "prompt_cache_key": body.get("prompt_cache_key"),
            "reasoning": {"effort": None, "summary": None}, "safety_identifier": None,
            "service_tier": "default", "store": body.get("store", True), "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []),
            "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled", "metadata": {}}
        if done:  # the schema has no null usage: a pending response leaves it out
            response["usage"] = {
                "input_tokens": 120,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 140}
        return response

    @staticmethod
    def stream_events(answer: Answer, body: dict[str, Any], number: int) -> list[bytes]:
        events: list[bytes] = []

        def emit(kind: str, **fields: Any) -> None:
            events.append(sse_event({"type": kind, "sequence_number": len(events), **fields}, kind))

        pending = ResponsesUpstream.response(None, body, number, "in_progress")
        emit("response.created", response=pending)
        emit("response.in_progress", response=pending)
        message, *calls = ResponsesUpstream.items(answer, number)
        item_id = message["id"]
        emit("response.output_item.added", output_index=0,
             item={**message, "status": "in_progress", "content": []})
        empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
        emit("response.content_part.added", item_id=item_id, output_index=0, content_index=0,
             part=empty)
        text = answer.text
        for start in range(0, len(text), 8):
            emit("response.output_text.delta", item_id=item_id, output_index=0, content_index=0,
                 delta=text[start:start + 8], logprobs=[])
        emit("response.output_text.done", item_id=item_id, output_index=0, content_index=0,
             text=text, logprobs=[])
        emit("response.content_part.done", item_id=item_id, output_index=0, content_index=0,
             part=message["content"][0])
        emit("response.output_item.done", output_index=0, item=message)
        for index, call in enumerate(calls, start=1):
            field, kind = (("input", "response.custom_tool_call_input")
                           if call["type"] == "custom_tool_call"
                           else ("arguments", "response.function_call_arguments"))
            opening = {**call, field: ""}
            if "status" in call:
                opening["status"] = "in_progress"
            emit("response.output_item.added", output_index=index, item=opening)
            value = call[field]
            for start in range(0, len(value), 7):
                emit(f"{kind}.delta", item_id=call["id"], output_index=index,
                     delta=value[start:start + 7])
            done = {"input": value} if field == "input" else {"name": call["name"],
                                                              "arguments": value}
            emit(f"{kind}.done", item_id=call["id"], output_index=index, **done)
            emit("response.output_item.done", output_index=index, item=call)
        emit("response.completed", response=ResponsesUpstream.response(answer, body, number,
                                                                         "completed"))
        return events
