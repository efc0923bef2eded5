"""Which answers may be kept, and a chat or completions answer in its other form.

Never kept: errors, answers cut short (a choice without ``finish_reason``), ``content_filter``
finishes and refusals (a provider's safety decision may be transient), and — unless the model's
``tool_calls = true`` — answers that call tools (their results depend on the world).

`completion_from_chunks` turns a recorded stream into the ``chat.completion`` /
``text_completion`` a non-streamed request gets; `chunks_from_completion` turns a complete
answer into the chunks a streamed request gets (per choice: its content in one chunk, its
finish in another, then the usage chunk), so each kind of entry serves both kinds of request.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["ChunkCheck", "chunks_from_completion", "completion_from_chunks", "storable"]

Body = dict[str, Any]
_BAD_FINISH = frozenset({"content_filter", "error"})
_TOOL_FINISH = frozenset({"tool_calls", "function_call"})
_TOOL_BLOCKS = frozenset({"tool_use", "server_tool_use"})


def storable(data: Body, tool_calls: bool) -> bool:
    """Whether a complete answer may be kept (``tool_calls``: answers that call tools may)."""
    if data.get("error"):
        return False
    kind = data.get("object") or data.get("type")
    if kind in ("chat.completion", "text_completion"):
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            return False
        for choice in choices:
            if not isinstance(choice, dict) or not _choice_storable(choice, tool_calls):
                return False
        return True
    if kind == "list":  # embeddings
        return isinstance(data.get("data"), list) and bool(data["data"])
    if kind == "response":
        return data.get("status") == "completed" and _output_storable(data.get("output"), tool_calls)
    if kind == "message":  # the Anthropic Messages API
        reason = data.get("stop_reason")
        blocks = data.get("content") if isinstance(data.get("content"), list) else []
        calls = any(isinstance(b, dict) and b.get("type") in _TOOL_BLOCKS for b in blocks)
        return bool(reason) and reason != "refusal" and (tool_calls or not calls)
    return False


def _choice_storable(choice: Body, tool_calls: bool) -> bool:
    reason = choice.get("finish_reason")
    if not reason or reason in _BAD_FINISH or (reason in _TOOL_FINISH and not tool_calls):
        return False
    message = choice.get("message")
    if isinstance(message, dict):
        if message.get("refusal"):
            return False
        if not tool_calls and (message.get("tool_calls") or message.get("function_call")):
            return False
    return True


def _output_storable(output: Any, tool_calls: bool) -> bool:
    if not isinstance(output, list):
        return False
    for item in output:
        if not isinstance(item, dict):
            return False
        kind = str(item.get("type", ""))
        if kind.endswith("_call") and not tool_calls:  # function, web search, file search...
            return False
        if kind == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and part.get("type") == "refusal":
                    return False
    return True


class ChunkCheck:
    """Watches a chat or completions chunk stream as it passes: `complete` once every one of
    the ``expected`` choices finished and nothing made the answer unfit to keep."""

    __slots__ = ("expected", "finished", "fit", "tool_calls")

    def __init__(self, expected: int, tool_calls: bool) -> None:
        self.expected = expected
        self.tool_calls = tool_calls
        self.finished: set[Any] = set()
        self.fit = True

    def see(self, data: Body) -> None:
        choices = data.get("choices")
        if data.get("error") and not choices:
            self.fit = False
            return
        for choice in choices or ():
            reason = choice.get("finish_reason")
            if reason:
                if reason in _BAD_FINISH or (reason in _TOOL_FINISH and not self.tool_calls):
                    self.fit = False
                self.finished.add(choice.get("index", 0))
            delta = choice.get("delta")
            if isinstance(delta, dict):
                if delta.get("refusal"):
                    self.fit = False
                if not self.tool_calls and (delta.get("tool_calls") or delta.get("function_call")):
                    self.fit = False

    @property
    def complete(self) -> bool:
        return self.fit and len(self.finished) >= self.expected


def completion_from_chunks(chunks: Iterable[Body]) -> Body:
    """The complete answer a recorded stream adds up to: ``chat.completion`` (each choice's
    delta fields joined: text concatenated, tool calls merged by index, log probabilities
    appended) or ``text_completion``, with the stream's usage."""
    head: Body | None = None
    usage: Any = None
    choices: dict[int, Body] = {}
    chat = True
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if head is None:
                head = chunk
                chat = chunk.get("object") != "text_completion"
            index = choice.get("index", 0)
            merged = choices.get(index)
            if merged is None:
                merged = choices[index] = {"index": index, "finish_reason": None, "logprobs": None}
                merged["message" if chat else "text"] = {} if chat else ""
            if chat:
                _merge_delta(merged["message"], choice.get("delta") or {})
            elif isinstance(choice.get("text"), str):
                merged["text"] += choice["text"]
            if choice.get("logprobs"):
                merged["logprobs"] = _merge_logprobs(merged["logprobs"], choice["logprobs"])
            if choice.get("finish_reason"):
                merged["finish_reason"] = choice["finish_reason"]
    head = head or {}
    answer: Body = {
        "id": head.get("id", ""),
        "object": "chat.completion" if chat else "text_completion",
        "created": head.get("created", 0),
        "model": head.get("model", ""),
        "choices": [_finish_message(choices[i]) if chat else choices[i] for i in sorted(choices)],
    }
    for name in ("system_fingerprint", "service_tier"):
        if head.get(name) is not None:
            answer[name] = head[name]
    if usage is not None:
        answer["usage"] = usage
    return answer


def _merge_delta(message: Body, delta: Body) -> None:
    for name, value in delta.items():
        if value is None:
            message.setdefault(name, None)
        elif name == "tool_calls" and isinstance(value, list):
            calls = message.setdefault("_calls", {})
            for call in value:
                index = call.get("index", 0)
                merged = calls.setdefault(index, {"function": {"arguments": ""}})
                for key in ("id", "type"):
                    if call.get(key):
                        merged[key] = call[key]
                function = call.get("function") or {}
                if function.get("name"):
                    merged["function"]["name"] = function["name"]
                merged["function"]["arguments"] += function.get("arguments") or ""
        elif isinstance(value, str) and name != "role":
            message[name] = (message.get(name) or "") + value
        else:
            message[name] = value


def _finish_message(choice: Body) -> Body:
    message = choice["message"]
    calls = message.pop("_calls", None)
    message.setdefault("role", "assistant")
    message.setdefault("content", None)
    message.setdefault("refusal", None)
    if calls:
        message["tool_calls"] = [{"type": "function", **calls[i]} for i in sorted(calls)]
    if message.get("content") == "" and calls:
        message["content"] = None
    return choice


def _merge_logprobs(merged: Any, more: Any) -> Any:
    if not isinstance(merged, dict) or not isinstance(more, dict):
        return more
    for name, value in more.items():
        if isinstance(value, list) and isinstance(merged.get(name), list):
            merged[name] = merged[name] + value
        elif value is not None or name not in merged:
            merged[name] = value
    return merged


def chunks_from_completion(data: Body) -> list[Body]:
    """The stream a complete answer replays as: per chat choice its content in one chunk (role,
    text, refusal, tool calls with their index) and its ``finish_reason`` in the next (per
    completions choice, one chunk with both), then one usage chunk (``choices: []``) when the
    answer has usage."""
    chat = data.get("object") != "text_completion"
    head: Body = {"id": data.get("id", ""), "object": "chat.completion.chunk" if chat else "text_completion",
                  "created": data.get("created", 0), "model": data.get("model", "")}  # fmt: skip
    for name in ("system_fingerprint", "service_tier"):
        if data.get(name) is not None:
            head[name] = data[name]
    chunks: list[Body] = []
    for choice in data.get("choices") or ():
        index = choice.get("index", 0)
        if chat:
            message = choice.get("message") or {}
            delta = {k: v for k, v in message.items() if v is not None and k != "tool_calls"}
            if message.get("tool_calls"):
                delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
            first: Body = {"index": index, "delta": delta, "logprobs": choice.get("logprobs"), "finish_reason": None}
            last: Body = {"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason")}
            chunks.append({**head, "choices": [first]})
            chunks.append({**head, "choices": [last]})
        else:  # one chunk: the text and the finish (the spec's completion object has no null finish)
            chunks.append({**head, "choices": [{"index": index, "text": choice.get("text") or "",
                                                "logprobs": choice.get("logprobs"),
                                                "finish_reason": choice.get("finish_reason")}]})  # fmt: skip
    if data.get("usage"):
        chunks.append({**head, "choices": [], "usage": data["usage"]})
    return chunks
