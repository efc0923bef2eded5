"""Chat completions: the ``chat.completion`` body and the ``chat.completion.chunk`` stream chunk.

The checks follow ``CreateChatCompletionResponse`` (choices: ``index``, ``message``,
``logprobs``, ``finish_reason`` required; ``ChatCompletionResponseMessage``: ``role``,
``content``, ``refusal`` required, ``tool_calls`` an array of ``ChatCompletionMessageToolCall``
or ``ChatCompletionMessageCustomToolCall``, ``annotations`` an array, ``function_call`` an
object) and ``CreateChatCompletionStreamResponse`` (choices: ``index``, ``delta``,
``finish_reason`` required, ``finish_reason`` nullable; ``ChatCompletionStreamResponseDelta``;
``ChatCompletionMessageToolCallChunk``: ``index`` required).
"""

from __future__ import annotations

from typing import Any

import orjson

from ._base import (
    CHAT_FINISH,
    ConformError,
    Fallback,
    finish_reason,
    fix_chat_logprobs,
    fix_head,
    fix_kind,
    fix_usage,
    infer_finish,
    new_call_id,
    text_content,
)

__all__ = ["ChunkState", "fix_chat_chunk", "fix_chat_completion"]

_DELTA_ROLES = frozenset({"developer", "system", "user", "assistant", "tool"})


def fix_chat_completion(data: dict[str, Any], fb: Fallback) -> bool:
    """Make ``data`` a valid ``CreateChatCompletionResponse``; whether anything changed."""
    changed = fix_head(data, "chat.completion", fb)
    choices = data.get("choices")
    if type(choices) is not list:
        raise ConformError("the chat completion has no choices list")
    usage = data.get("usage", ...)
    if type(usage) is dict:
        changed |= fix_usage(usage)
    elif usage is not ...:  # null or garbage: the body's usage is not nullable
        del data["usage"]
        changed = True
    for position, choice in enumerate(choices):
        where = f"choices[{position}]"
        if type(choice) is not dict:
            raise ConformError(f"{where} is not an object")
        if type(choice.get("index")) is not int:
            choice["index"] = position
            changed = True
        message = choice.get("message")
        if type(message) is not dict:
            raise ConformError(f"{where}.message is not an object")
        changed |= _fix_message(message, f"{where}.message")
        if "logprobs" not in choice:
            choice["logprobs"] = None
            changed = True
        elif choice["logprobs"] is not None:
            changed |= fix_chat_logprobs(choice, where)
        reason = choice.get("finish_reason")
        if reason not in CHAT_FINISH:
            if reason is None or reason == "":
                reason = infer_finish(bool(message.get("tool_calls")), usage, fb)
            else:
                reason = finish_reason(reason, CHAT_FINISH, where)
            choice["finish_reason"] = reason
            changed = True
    return changed


def _fix_message(message: dict[str, Any], where: str) -> bool:
    changed = False
    if message.get("role") != "assistant":
        message["role"] = "assistant"
        changed = True
    content = message.get("content", ...)
    if content is not None and type(content) is not str:
        message["content"] = None if content is ... else text_content(content, f"{where}.content")
        changed = True
    refusal = message.get("refusal", ...)
    if refusal is not None and type(refusal) is not str:
        if refusal is not ...:
            raise ConformError(f"{where}.refusal is neither text nor null")
        message["refusal"] = None
        changed = True
    if "tool_calls" in message:
        calls = message["tool_calls"]
        if calls is None:
            del message["tool_calls"]
            changed = True
        elif type(calls) is not list:
            raise ConformError(f"{where}.tool_calls is not a list")
        else:
            for index, call in enumerate(calls):
                changed |= _fix_tool_call(call, f"{where}.tool_calls[{index}]")
    for key in ("annotations", "function_call"):  # an array and an object: null means absent
        if key in message and message[key] is None:
            del message[key]
            changed = True
    call = message.get("function_call")
    if call is not None:
        changed |= _fix_function(call, f"{where}.function_call")
    return changed


def _fix_tool_call(call: Any, where: str) -> bool:
    """``ChatCompletionMessageToolCall``: ``id``, ``type`` ("function") and ``function`` with
    string ``name`` and ``arguments``; a missing id is generated, object arguments encoded."""
    if type(call) is not dict:
        raise ConformError(f"{where} is not an object")
    changed = False
    if call.get("type") == "custom" and type(call.get("custom")) is dict:
        custom = call["custom"]
        if type(custom.get("name")) is not str or type(custom.get("input")) is not str:
            raise ConformError(f"{where}.custom has no name or input")
    else:
        if call.get("type") != "function":
            call["type"] = "function"
            changed = True
        function = call.get("function")
        if type(function) is not dict:
            raise ConformError(f"{where}.function is not an object")
        changed |= _fix_function(function, f"{where}.function")
    if type(call.get("id")) is not str:
        call["id"] = new_call_id()
        changed = True
    return changed


def _fix_function(function: Any, where: str) -> bool:
    if type(function) is not dict or type(function.get("name")) is not str:
        raise ConformError(f"{where} has no name")
    arguments = function.get("arguments")
    if type(arguments) is str:
        return False
    function["arguments"] = "{}" if arguments is None else orjson.dumps(arguments).decode()
    return True


class ChunkState:
    """What a stream's conformance remembers between chunks: the first ``id``, ``created``
    and ``model`` (later chunks get the same), the choices seen and finished, those that
    streamed tool calls, and the last usage."""

    __slots__ = ("fb", "id", "created", "model", "seen", "finished", "tools", "usage")

    def __init__(self, fb: Fallback) -> None:
        self.fb = fb
        self.id: str | None = None
        self.created: int | None = None
        self.model: str | None = None
        self.seen: set[int] = set()
        self.finished: set[int] = set()
        self.tools: set[int] = set()
        self.usage: dict[str, Any] | None = None

    def head(self, data: dict[str, Any], obj: str) -> bool:
        """The chunk's top-level fields; the stream keeps one ``id`` (openai-go's stream
        accumulator refuses a chunk whose id changes) and fills a missing ``created`` or
        ``model`` with the first chunk's."""
        if self.id is None:
            first = data.get("id")
            self.id = first if type(first) is str else self.fb.id
            created = data.get("created")
            self.created = created if type(created) is int else self.fb.created
            model = data.get("model")
            self.model = model if type(model) is str else self.fb.model
        changed = False
        if data.get("id") != self.id:
            data["id"] = self.id
            changed = True
        if type(data.get("created")) is not int:
            data["created"] = self.created
            changed = True
        if type(data.get("model")) is not str:
            data["model"] = self.model
            changed = True
        return fix_kind(data, obj) or changed


def fix_chat_chunk(data: dict[str, Any], state: ChunkState) -> bool:
    """Make ``data`` a valid ``CreateChatCompletionStreamResponse``; whether anything changed.

    This runs on every chunk of every stream: the conforming path is kept to the fewest
    dictionary reads (error messages are only built when raised)."""
    get = data.get
    if state.id is None or get("id") != state.id or type(get("created")) is not int \
            or type(get("model")) is not str:
        changed = state.head(data, "chat.completion.chunk")
    else:
        changed = fix_kind(data, "chat.completion.chunk")
    choices = get("choices")
    if type(choices) is not list:
        data["choices"] = choices = []
        changed = True
    usage = get("usage")
    if usage is not None:
        if type(usage) is dict:
            changed |= fix_usage(usage)
            state.usage = usage
        else:
            del data["usage"]
            changed = True
    position = 0
    for choice in choices:
        if type(choice) is not dict:
            raise ConformError(f"choices[{position}] is not an object")
        index = choice.get("index")
        if type(index) is not int:
            choice["index"] = index = position
            changed = True
        delta = choice.get("delta")
        if type(delta) is not dict:
            if delta is not None and "delta" in choice:
                raise ConformError(f"choices[{position}].delta is not an object")
            choice["delta"] = delta = {}
            changed = True
        elif delta and (len(delta) != 1 or type(delta.get("content")) is not str):  # usual: {"content": "..."}
            changed |= _fix_delta(delta, position, state, index)
        if choice.get("logprobs") is not None:
            changed |= fix_chat_logprobs(choice, f"choices[{position}]")
        reason = choice.get("finish_reason", ...)
        if reason is not None:
            if reason not in CHAT_FINISH:
                if reason is ... or reason == "":  # Ollama sent "" for "not yet" (ollama#4357)
                    reason = None
                else:
                    reason = finish_reason(reason, CHAT_FINISH, f"choices[{position}]")
                choice["finish_reason"] = reason
                changed = True
            if reason is not None:
                state.finished.add(index)
        state.seen.add(index)
        position += 1
    return changed


def _fix_delta(delta: dict[str, Any], position: int, state: ChunkState, index: int) -> bool:
    where = f"choices[{position}].delta"
    changed = False
    role = delta.get("role", ...)
    if role is not ... and role not in _DELTA_ROLES:
        if role is None:
            del delta["role"]
        else:
            delta["role"] = "assistant"
        changed = True
    for key in ("content", "refusal"):
        value = delta.get(key)
        if value is not None and type(value) is not str:
            delta[key] = text_content(value, f"{where}.{key}")
            changed = True
    if "tool_calls" in delta:
        calls = delta["tool_calls"]
        if calls is None:
            del delta["tool_calls"]
            changed = True
        elif type(calls) is not list:
            raise ConformError(f"{where}.tool_calls is not a list")
        else:
            if calls:
                state.tools.add(index)
            for position, call in enumerate(calls):
                changed |= _fix_call_chunk(call, position, f"{where}.tool_calls[{position}]")
    if "function_call" in delta:
        call = delta["function_call"]
        if call is None:
            del delta["function_call"]
            changed = True
        else:
            changed |= _fix_pieces(call, f"{where}.function_call")
    return changed


def _fix_call_chunk(call: Any, position: int, where: str) -> bool:
    """``ChatCompletionMessageToolCallChunk``: ``index`` required; ``id``, ``type`` and the
    function's ``name`` and ``arguments`` optional but never null."""
    if type(call) is not dict:
        raise ConformError(f"{where} is not an object")
    changed = False
    if type(call.get("index")) is not int:
        call["index"] = position
        changed = True
    for key in ("id", "type"):
        if key in call and type(call[key]) is not str:
            del call[key]
            changed = True
    if call.get("type", "function") != "function":
        call["type"] = "function"
        changed = True
    if "function" in call:
        function = call["function"]
        if function is None:
            del call["function"]
            changed = True
        else:
            changed |= _fix_pieces(function, f"{where}.function")
    return changed


def _fix_pieces(function: Any, where: str) -> bool:
    """A streamed function's ``name`` and ``arguments``: strings when present."""
    if type(function) is not dict:
        raise ConformError(f"{where} is not an object")
    changed = False
    for key in ("name", "arguments"):
        if key in function and type(function[key]) is not str:
            value = function[key]
            if value is None or key == "name":
                del function[key]
            else:
                function[key] = orjson.dumps(value).decode()
            changed = True
    return changed
