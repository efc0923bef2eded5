"""Responses API event streams: whether a recorded one may be kept, and each form of a
``/responses`` answer served as the other.

A stream is kept only when its last event is ``response.completed`` and the final response
passes `answers.storable` (``response.failed`` and ``response.incomplete`` are never kept).
A non-streamed request is served the response that event carries; a streamed request served
from a non-streamed answer gets the event sequence the API sends: ``response.created``,
``response.in_progress``, per output item ``response.output_item.added``, its parts with one
delta each and their ``done`` events, ``response.output_item.done``, then
``response.completed``, ``sequence_number`` counting from 0.
"""

from __future__ import annotations

from typing import Any

import orjson

from compatgate import SSEDecoder, encode_event

from .answers import storable

__all__ = ["completed_response", "events_from_response"]

Body = dict[str, Any]


def completed_response(stream: bytes, tool_calls: bool) -> Body | None:
    """The final response of a recorded event stream when it may be kept, else None."""
    try:
        events = SSEDecoder(max_event_bytes=len(stream) + 1).feed(stream + b"\n\n")
    except ValueError:
        return None
    if not events:
        return None
    try:
        last = orjson.loads(events[-1].data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(last, dict) or last.get("type") != "response.completed":
        return None
    response = last.get("response")
    if not isinstance(response, dict) or not storable(response, tool_calls):
        return None
    return response


class _Events:
    def __init__(self) -> None:
        self.sequence = 0
        self.out: list[bytes] = []

    def __call__(self, type_: str, **fields: Any) -> None:
        data = {"type": type_, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        self.out.append(encode_event(orjson.dumps(data), event=type_))


def events_from_response(response: Body) -> bytes:
    """The event stream of a complete ``response`` object."""
    emit = _Events()
    opening = {**response, "status": "in_progress", "output": []}
    opening.pop("usage", None)
    emit("response.created", response=opening)
    emit("response.in_progress", response=opening)
    for position, item in enumerate(response.get("output") or ()):
        kind = item.get("type")
        where = {"item_id": item.get("id", ""), "output_index": position}
        if kind == "message":
            emit("response.output_item.added", output_index=position,
                 item={**item, "status": "in_progress", "content": []})  # fmt: skip
            for index, part in enumerate(item.get("content") or ()):
                _text_part(emit, where, index, part)
        elif kind == "reasoning":
            emit("response.output_item.added", output_index=position, item={**item, "summary": []})
            for index, part in enumerate(item.get("summary") or ()):
                text = part.get("text", "")
                emit("response.reasoning_summary_part.added", **where, summary_index=index,
                     part={**part, "text": ""})  # fmt: skip
                emit("response.reasoning_summary_text.delta", **where, summary_index=index, delta=text)
                emit("response.reasoning_summary_text.done", **where, summary_index=index, text=text)
                emit("response.reasoning_summary_part.done", **where, summary_index=index, part=part)
        elif kind == "function_call":
            arguments = item.get("arguments", "")
            emit("response.output_item.added", output_index=position,
                 item={**item, "status": "in_progress", "arguments": ""})  # fmt: skip
            emit("response.function_call_arguments.delta", **where, delta=arguments)
            emit("response.function_call_arguments.done", **where, name=item.get("name", ""),
                 arguments=arguments)  # fmt: skip
        else:
            emit("response.output_item.added", output_index=position, item=item)
        emit("response.output_item.done", output_index=position, item=item)
    emit("response.completed", response=response)
    return b"".join(emit.out)


def _text_part(emit: _Events, where: Body, index: int, part: Body) -> None:
    kind = part.get("type")
    if kind == "output_text":
        text = part.get("text", "")
        emit("response.content_part.added", **where, content_index=index,
             part={**part, "text": "", "annotations": []})  # fmt: skip
        emit("response.output_text.delta", **where, content_index=index, delta=text, logprobs=[])
        emit("response.output_text.done", **where, content_index=index, text=text, logprobs=[])
    elif kind == "refusal":
        text = part.get("refusal", "")
        emit("response.content_part.added", **where, content_index=index, part={**part, "refusal": ""})
        emit("response.refusal.delta", **where, content_index=index, delta=text)
        emit("response.refusal.done", **where, content_index=index, refusal=text)
    else:
        emit("response.content_part.added", **where, content_index=index, part=part)
    emit("response.content_part.done", **where, content_index=index, part=part)
