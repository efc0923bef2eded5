"""A chat chunk stream as the Responses API event stream.

``response.created``, ``response.in_progress`` (at once, see `ResponseEncoder.start`), then for
each output item ``response.output_item.added``, its parts and deltas
(``response.output_text.delta``, ``response.function_call_arguments.delta``,
``response.reasoning_summary_text.delta``; a custom tool call's input in one
``response.custom_tool_call_input.delta`` once complete, since it is read out of the function's
JSON arguments), their ``done`` events and ``response.output_item.done``, and exactly one
terminal event:
``response.completed``, ``response.incomplete`` or ``response.failed`` (an upstream error, or a
stream that ended without a finish reason). ``sequence_number`` increases from 0. The relay
(`compatgate.relay.ChunkRelay`) decides which of the three.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from ..exceptions import GatewayError
from ..replies import Chunk
from ..sse import encode_event
from .output import call_item, item_id, message_item, output_text, reasoning_item, response_usage, status_of
from .tools import ToolMap, custom_input

__all__ = ["ResponseEncoder"]

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


class ResponseEncoder:
    """An `Encoder` writing chat chunks as Responses events; ``done`` (awaited before the
    terminal event goes out) gets the final Response, e.g. to store it."""

    media_type = "text/event-stream; charset=utf-8"

    def __init__(self, response: Body, done: Callable[[Body], Awaitable[None]], tools: ToolMap | None = None) -> None:
        self.response, self.done = response, done
        self.tools = tools or ToolMap()
        self.inputs: dict[str, list[str]] = {}  # the arguments of open custom tool calls, by item id
        self.sequence = 0
        self.output: list[Body] = response["output"]
        self.open: dict[str, Body] = {}  # the open reasoning / message item
        self.calls: dict[int, Body] = {}  # open function_call items by chat tool call index
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.started = False

    def event(self, type_: str, **fields: Any) -> bytes:
        data = {"type": type_, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return encode_event(orjson.dumps(data), event=type_)

    def _start(self) -> bytes:
        self.started = True
        return self.event("response.created", response=self.response) + self.event(
            "response.in_progress", response=self.response)

    def start(self) -> bytes:
        """``response.created`` and ``response.in_progress``, at once."""
        return b"" if self.started else self._start()

    def feed(self, chunk: Chunk) -> bytes:
        data = chunk.data
        out = [] if self.started else [self._start()]
        self.usage = data.get("usage") or self.usage
        for choice in (data.get("choices") or [])[:1]:
            out += self._delta(choice.get("delta") or {})
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
        return b"".join(out)

    async def finish(self) -> bytes:
        out = [] if self.started else [self._start()]
        out += self._close(*self.open, "calls")
        status_of(self.response, self.finish_reason)
        usage = response_usage(self.usage)
        if usage is not None:
            self.response["usage"] = usage
        await self.done(self.response)
        out.append(self.event(f"response.{self.response['status']}", response=self.response))
        return b"".join(out)

    def error(self, error: GatewayError) -> bytes:
        out = [] if self.started else [self._start()]
        for item in self.open.values():
            item.pop("_text", None)
        self.response["status"] = "failed"
        self.response["error"] = {"code": "server_error", "message": error.message}
        usage = response_usage(self.usage)
        if usage is not None:
            self.response["usage"] = usage
        out.append(self.event("response.failed", response=self.response))
        return b"".join(out)

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"

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
        extra: Body = {"logprobs": []} if kind == "message" else {}
        out.append(self.event(f"response.{name}.delta", **self._where(item), **{index: 0}, **extra, delta=text))
        return out

    def _call(self, call: Body) -> list[bytes]:
        out: list[bytes] = []
        index = call.get("index", 0)
        function = call.get("function") or {}
        item = self.calls.get(index)
        if item is None:
            out += self._close(*self.open)
            item = call_item(self.tools, call.get("id") or item_id("call"), function.get("name") or "", "",
                             status="in_progress")
            out.append(self._add(item))
            self.calls[index] = item
            if item["type"] == "custom_tool_call":
                self.inputs[item["id"]] = []
        arguments = function.get("arguments")
        if arguments and item["type"] == "custom_tool_call":
            self.inputs[item["id"]].append(arguments)
        elif arguments:
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
                    if item["type"] == "custom_tool_call":
                        item["input"] = text = custom_input("".join(self.inputs.pop(item["id"], ())))
                        if text:
                            out.append(self.event("response.custom_tool_call_input.delta", **self._where(item),
                                                  delta=text))
                        out.append(self.event("response.custom_tool_call_input.done", **self._where(item),
                                              input=text))
                    else:
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
            extra: Body = {"logprobs": []} if kind == "message" else {}
            out.append(self.event(f"response.{name}.done", **where, **{index: 0, field: text}, **extra))
            out.append(self.event(f"response.{part_event}.done", **where, **{index: 0}, part=part(text)))
            if kind == "reasoning":
                item["summary"] = [part(text)]
            else:
                item.update(status="completed", content=[part(text)])
            out.append(self.event("response.output_item.done", output_index=where["output_index"], item=item))
        return out
