"""Legacy completions: the ``text_completion`` body and its stream chunks.

Both follow ``CreateCompletionResponse`` ("both the streamed and non-streamed response objects
share the same shape"): ``id``, ``object``, ``created``, ``model``, ``choices`` required; each
choice has ``text``, ``index``, ``logprobs`` (nullable) and ``finish_reason`` (``stop``,
``length`` or ``content_filter``). A streamed chunk keeps ``"finish_reason": null`` until its
choice ends, as OpenAI sends it: the one documented gap between the spec and the real wire.
"""

from __future__ import annotations

from typing import Any

from ._base import (
    COMPLETION_FINISH,
    ConformError,
    Fallback,
    finish_reason,
    fix_head,
    fix_kind,
    fix_usage,
    infer_finish,
)
from .chat import ChunkState

__all__ = ["fix_completion", "fix_completion_chunk"]


def fix_completion(data: dict[str, Any], fb: Fallback) -> bool:
    """Make ``data`` a valid non-streamed ``CreateCompletionResponse``."""
    changed = fix_head(data, "text_completion", fb)
    if type(data.get("choices")) is not list:
        raise ConformError("the completion has no choices list")
    changed |= _fix_usage(data)
    return _fix_choices(data, data.get("usage"), fb, None) or changed


def fix_completion_chunk(data: dict[str, Any], state: ChunkState) -> bool:
    """Make ``data`` a valid streamed ``text_completion`` chunk (``finish_reason`` null until
    its choice ends)."""
    get = data.get
    if state.id is None or get("id") != state.id or type(get("created")) is not int \
            or type(get("model")) is not str:
        changed = state.head(data, "text_completion")
    else:
        changed = fix_kind(data, "text_completion")
    if type(get("choices")) is not list:
        data["choices"] = []
        changed = True
    changed |= _fix_usage(data)
    if type(data.get("usage")) is dict:
        state.usage = data["usage"]
    return _fix_choices(data, None, state.fb, state) or changed


def _fix_usage(data: dict[str, Any]) -> bool:
    usage = data.get("usage", ...)
    if type(usage) is dict:
        return fix_usage(usage)
    if usage is ...:
        return False
    del data["usage"]  # null or garbage: CreateCompletionResponse.usage is not nullable
    return True


def _fix_choices(data: dict[str, Any], usage: Any, fb: Fallback, state: ChunkState | None) -> bool:
    changed = False
    for position, choice in enumerate(data["choices"]):
        if type(choice) is not dict:
            raise ConformError(f"choices[{position}] is not an object")
        index = choice.get("index")
        if type(index) is not int:
            choice["index"] = index = position
            changed = True
        text = choice.get("text")
        if type(text) is not str:
            if text is not None:
                raise ConformError(f"choices[{position}].text is not text")
            choice["text"] = ""
            changed = True
        logprobs = choice.get("logprobs", ...)
        if logprobs is not None and type(logprobs) is not dict:
            if logprobs is not ...:
                raise ConformError(f"choices[{position}].logprobs is neither an object nor null")
            choice["logprobs"] = None
            changed = True
        reason = choice.get("finish_reason", ...)
        if reason not in COMPLETION_FINISH:
            if reason is ... or reason is None or reason == "":
                reason = None if state is not None else infer_finish(False, usage, fb)
            else:
                reason = finish_reason(reason, COMPLETION_FINISH, f"choices[{position}]")
            if reason is not None or choice.get("finish_reason", ...) is not None:
                choice["finish_reason"] = reason
                changed = True
        if state is not None:
            state.seen.add(index)
            if reason is not None:
                state.finished.add(index)
    return changed
