"""A chat chunk stream as the Responses API event stream.

``response.created``, ``response.in_progress``, then for each output item
``response.output_item.added``, its parts and deltas (``response.output_text.delta``,
``response.function_call_arguments.delta``, ``response.reasoning_summary_text.delta``), their
``done`` events and ``response.output_item.done``, and exactly one terminal event:
``response.completed``, ``response.incomplete`` or ``response.failed`` (an upstream error, or a
stream that ended without a finish reason). ``sequence_number`` increases from 0.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from ..exceptions import GatewayError, UpstreamStreamError
from ..provider import ChunkStream, RawReply
from ..sse import encode_event
from ..usage import Usage
from .convert import call_item, item_id, message_item, output_text, reasoning_item, response_usage, status_of

__all__ = ["ResponseEvents"]

logger = logging.getLogger("compatgate")

Body = dict[str, Any]


# The text an item streams: its part event, its delta/done event, the index field, the part
# for a text, the done event's text field.
_KINDS: dict[str, tuple[str, str, str, Callable[[str], Body], str]] = {
    "reasoning": ("reasoning_summary_part", "reasoning_summary_text", "summary_index",
                  lambda text: {"type": "summary_text", "text": text}, "text"),
    "message": ("content_part", "output_text", "content_index", output_text, "text"),
    "refusal": ("content_part", "refusal", "content_index", lambda text: {"type": "refusal", "refusal": text},
                "refusal"),
}


class ResponseEvents:
    """Turns ``chunks`` into encoded Responses events; ``done`` gets the final Response."""

    def __init__(self, chunks: ChunkStream, response: Body, reply: RawReply,
                 done: Callable[[Body], Awaitable[None]]) -> None:
        self.chunks, self.response, self.reply, self.done = chunks, response, reply, done
        self.sequence = 0
        self.output: list[Body] = response["output"]
        self.open: dict[str, Body] = {}  # the open reasoning / message item
        self.calls: dict[int, Body] = {}  # open function_call items by chat tool call index

    def event(self, type_: str, **fields: Any) -> bytes:
        data = {"type": type_, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return encode_event(orjson.dumps(data), event=type_)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.event("response.created", response=self.response)
        yield self.event("response.in_progress", response=self.response)
        finish: str | None = None
        usage: Any = None
        try:
            try:
                async for chunk in self.chunks:
                    data = chunk.data
                    choices = data.get("choices") or []
                    if "error" in data and not choices:
                        raise UpstreamStreamError(str((data["error"] or {}).get("message", "Upstream stream error.")))
                    usage = data.get("usage") or usage
                    for choice in choices[:1]:
                        for piece in self._delta(choice.get("delta") or {}):
                            yield piece
                        finish = choice.get("finish_reason") or finish
                if finish is None:
                    raise UpstreamStreamError("The upstream stream ended before the response was complete.")
            finally:
                await self.chunks.aclose()
        except Exception as exc:
            if not isinstance(exc, GatewayError):
                logger.exception("compatgate: converting a Responses stream failed")
            for item in self.open.values():
                item.pop("_text", None)
            self.response["status"] = "failed"
            message = exc.message if isinstance(exc, GatewayError) else "The stream failed inside the gateway."
            self.response["error"] = {"code": "server_error", "message": message}
            self.reply.usage = Usage.from_openai(usage)
            yield self.event("response.failed", response=self.response)
            return
        for piece in self._close(*self.open, "calls"):
            yield piece
        status_of(self.response, finish)
        if usage is not None:
            self.response["usage"] = response_usage(usage)
        self.reply.usage = Usage.from_openai(usage)
        await self.done(self.response)
        yield self.event(f"response.{self.response['status']}", response=self.response)

    def _delta(self, delta: Body) -> list[bytes]:
        out: list[bytes] = []
        if delta.get("reasoning_content"):
            out += self._text("reasoning", delta["reasoning_content"])
        if delta.get("content"):
            out += self._text("message", delta["content"])
        if delta.get("refusal"):
            out += self._text("refusal", delta["refusal"])
        for call in delta.get("tool_calls") or ():
            out += self._call(call)
        return out

    def _add(self, item: Body) -> bytes:
        self.output.append(item)
        return self.event("response.output_item.added", output_index=len(self.output) - 1, item=item)

    def _text(self, kind: str, text: str) -> list[bytes]:
        out: list[bytes] = []
        part_event, name, index, part, _ = _KINDS[kind]
        item = self.open.get(kind)
        if item is None:
            out += self._close(*self.open)
            if kind == "reasoning":
                item = {**reasoning_item(""), "summary": []}
            else:
                item = {**message_item("", status="in_progress"), "content": []}
            out.append(self._add(item))
            out.append(self.event(f"response.{part_event}.added", **self._where(item), **{index: 0}, part=part("")))
            item["_text"] = ""
            self.open[kind] = item
        item["_text"] += text
        extra = {"logprobs": []} if kind == "message" else {}
        out.append(self.event(f"response.{name}.delta", **self._where(item), **{index: 0}, **extra, delta=text))
        return out

    def _call(self, call: Body) -> list[bytes]:
        out: list[bytes] = []
        index = call.get("index", 0)
        function = call.get("function") or {}
        item = self.calls.get(index)
        if item is None:
            out += self._close(*self.open)
            item = call_item(call.get("id") or item_id("call"), function.get("name") or "", "",
                             status="in_progress")
            out.append(self._add(item))
            self.calls[index] = item
        arguments = function.get("arguments")
        if arguments:
            item["arguments"] += arguments
            out.append(self.event("response.function_call_arguments.delta", **self._where(item), delta=arguments))
        return out

    def _where(self, item: Body) -> Body:
        return {"item_id": item["id"], "output_index": self.output.index(item)}

    def _close(self, *kinds: str) -> list[bytes]:
        out: list[bytes] = []
        for kind in kinds:
            if kind == "calls":
                for item in self.calls.values():
                    item["status"] = "completed"
                    out.append(self.event("response.function_call_arguments.done", **self._where(item),
                                          name=item["name"], arguments=item["arguments"]))
                    out.append(self.event("response.output_item.done", output_index=self._where(item)["output_index"],
                                          item=item))
                self.calls = {}
                continue
            item = self.open.pop(kind)
            text = item.pop("_text")
            where = self._where(item)
            part_event, name, index, part, field = _KINDS[kind]
            extra = {"logprobs": []} if kind == "message" else {}
            out.append(self.event(f"response.{name}.done", **where, **{index: 0, field: text}, **extra))
            out.append(self.event(f"response.{part_event}.done", **where, **{index: 0}, part=part(text)))
            if kind == "reasoning":
                item["summary"] = [part(text)]
            else:
                item.update(status="completed", content=[part(text)])
            out.append(self.event("response.output_item.done", output_index=where["output_index"], item=item))
        return out
