"""What every conformance fixer shares: the error, the neutral values, finish reasons, usage
and chat logprobs.

Each ``fix_*`` function checks one decoded object against the exact fields its schema in the
official OpenAPI document (``openai-openapi.yaml``, ``components/schemas``) requires, repairs
in place what is wrong, and returns whether it changed anything: on a conforming object it is
only a handful of ``type(...) is`` tests, so the caller can relay the upstream's own bytes.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from ..exceptions import UpstreamError

__all__ = [
    "CHAT_FINISH",
    "COMPLETION_FINISH",
    "ConformError",
    "Fallback",
    "finish_reason",
    "fix_chat_logprobs",
    "fix_head",
    "fix_kind",
    "fix_usage",
    "infer_finish",
    "text_content",
]

#: ``CreateChatCompletionResponse.choices[].finish_reason`` (and the stream's) enum.
CHAT_FINISH = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
#: ``CreateCompletionResponse.choices[].finish_reason`` enum.
COMPLETION_FINISH = frozenset({"stop", "length", "content_filter"})

# Other servers' names for the spec's reasons. vLLM's "repetition" (its repetition detector cut a
# degenerate answer) is not a natural end: "length" tells the client the text is cut.
_ALIASES = {
    "eos": "stop", "eos_token": "stop", "end_turn": "stop", "stop_sequence": "stop",
    "max_tokens": "length", "max_length": "length", "repetition": "length",
    "tool_call": "tool_calls", "tool_use": "tool_calls",
}
# Reasons saying the answer is broken (vLLM's FINISH_REASON_STRINGS "abort", "error"): no
# neutral value may make such an answer look complete.
_BROKEN = frozenset({"abort", "error", "cancelled", "canceled"})

_SERVICE_TIERS = frozenset({"auto", "default", "flex", "scale", "priority", "fast"})
# CompletionUsage.{prompt,completion}_tokens_details: integer counts.
_DETAILS = {
    "prompt_tokens_details": frozenset(
        {"audio_tokens", "cached_tokens", "text_tokens", "image_tokens", "cache_write_tokens"}),
    "completion_tokens_details": frozenset(
        {"accepted_prediction_tokens", "audio_tokens", "reasoning_tokens", "text_tokens",
         "rejected_prediction_tokens"}),
}


class ConformError(UpstreamError):
    """The upstream's answer cannot be made to follow the schema without inventing content
    (a missing message or tool name, an answer the upstream itself called aborted...)."""

    code = "upstream_nonconforming"

    def __init__(self, what: str) -> None:
        super().__init__(f"The upstream's answer does not follow the OpenAI API and cannot be repaired: {what}.")


class Fallback:
    """Neutral values for required fields an upstream left out, made once and only when needed:
    ``id`` (``<prefix>-`` and 24 random hex digits), ``created`` (now), ``model`` (the model the
    client asked for), and the request's token limit for inferring a ``"length"`` finish."""

    __slots__ = ("model", "prefix", "max_tokens", "_id", "_created")

    def __init__(self, request: Mapping[str, Any] | None, model: str, prefix: str) -> None:
        request = request or {}
        self.model = model or (request.get("model") if isinstance(request.get("model"), str) else "") or "unknown"
        self.prefix = prefix
        limit = request.get("max_completion_tokens", request.get("max_tokens"))
        self.max_tokens = limit if type(limit) is int and limit > 0 else None
        self._id: str | None = None
        self._created: int | None = None

    @property
    def id(self) -> str:
        if self._id is None:
            self._id = f"{self.prefix}-{secrets.token_hex(12)}"
        return self._id

    @property
    def created(self) -> int:
        if self._created is None:
            self._created = int(time.time())
        return self._created


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def fix_head(data: dict[str, Any], obj: str, fb: Fallback) -> bool:
    """The top-level fields every completion object requires: ``id`` (string), ``object`` (the
    constant), ``created`` (integer), ``model`` (string); ``system_fingerprint`` (a string when
    present) and ``service_tier`` (the ServiceTier enum or null) are dropped when invalid."""
    changed = False
    if type(data.get("id")) is not str:
        data["id"] = fb.id
        changed = True
    created = data.get("created")
    if type(created) is not int:
        data["created"] = int(created) if type(created) is float and created.is_integer() else fb.created
        changed = True
    if type(data.get("model")) is not str:
        data["model"] = fb.model
        changed = True
    return fix_kind(data, obj) or changed


def fix_kind(data: dict[str, Any], obj: str) -> bool:
    """``object`` (the constant), ``system_fingerprint`` (a string when present) and
    ``service_tier`` (the ServiceTier enum or null)."""
    changed = False
    if data.get("object") != obj:
        data["object"] = obj
        changed = True
    if "system_fingerprint" in data and type(data["system_fingerprint"]) is not str:
        del data["system_fingerprint"]
        changed = True
    tier = data.get("service_tier")
    if tier is not None and tier not in _SERVICE_TIERS:
        del data["service_tier"]
        changed = True
    return changed


def finish_reason(value: Any, allowed: frozenset[str], where: str) -> str:
    """The spec's reason for an upstream's ``finish_reason`` that is not one of ``allowed``."""
    if isinstance(value, str):
        key = value.strip().lower()
        if key in allowed:
            return key
        if key in _BROKEN:
            raise ConformError(f"{where}.finish_reason is {value!r}: the upstream says the answer is incomplete")
        alias = _ALIASES.get(key)
        if alias is not None and alias in allowed:
            return alias
    return "stop"


def infer_finish(tool_calls: bool, usage: Any, fb: Fallback) -> str:
    """The reason for an answer the upstream called finished without saying why: ``tool_calls``
    when it holds tool calls, ``length`` when it used all the tokens the request allowed."""
    if tool_calls:
        return "tool_calls"
    if fb.max_tokens is not None and isinstance(usage, dict):
        used = usage.get("completion_tokens")
        if type(used) is int and used >= fb.max_tokens:
            return "length"
    return "stop"


def _count(value: Any) -> int | None:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def fix_usage(usage: dict[str, Any]) -> bool:
    """``CompletionUsage``: ``prompt_tokens``, ``completion_tokens`` and ``total_tokens`` are
    integers (a missing or null count is derived from the others, else 0); each details object,
    when present, is an object whose known counts are integers (null ones are dropped)."""
    changed = False
    prompt, completion, total = usage.get("prompt_tokens"), usage.get("completion_tokens"), usage.get("total_tokens")
    if type(prompt) is not int or type(completion) is not int or type(total) is not int:
        p, c, t = _count(prompt), _count(completion), _count(total)
        if p is None:
            p = t - c if t is not None and c is not None else 0
        if c is None:
            c = t - p if t is not None else 0
        if t is None:
            t = p + c
        usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"] = p, c, t
        changed = True
    for key, known in _DETAILS.items():
        if key not in usage:
            continue
        details = usage[key]
        if type(details) is not dict:
            del usage[key]
            changed = True
            continue
        for name in [k for k, v in details.items() if type(v) is not int and k in known]:
            value = _count(details[name])
            if value is None:
                del details[name]
            else:
                details[name] = value
            changed = True
    return changed


def _fix_token(entry: Any, where: str, top: bool) -> bool:
    """``ChatCompletionTokenLogprob`` (``top`` False) or one of its ``top_logprobs``: ``token``
    and ``logprob`` required, ``bytes`` an integer list or null (null when missing), and for the
    former ``top_logprobs`` a list (empty when missing)."""
    if type(entry) is not dict or type(entry.get("token")) is not str:
        raise ConformError(f"{where} is not a token log probability")
    logprob = entry.get("logprob")
    if type(logprob) is not float and type(logprob) is not int:
        raise ConformError(f"{where}.logprob is not a number")
    changed = False
    raw = entry.get("bytes", ...)
    if raw is not None and type(raw) is not list:
        entry["bytes"] = None
        changed = True
    if top:
        return changed
    tops = entry.get("top_logprobs")
    if type(tops) is not list:
        entry["top_logprobs"] = tops = []
        changed = True
    for index, item in enumerate(tops):
        changed |= _fix_token(item, f"{where}.top_logprobs[{index}]", True)
    return changed


def fix_chat_logprobs(choice: dict[str, Any], where: str) -> bool:
    """A chat choice's ``logprobs``: null, or an object whose ``content`` and ``refusal`` are
    both present (lists of ``ChatCompletionTokenLogprob`` or null; a missing one becomes null)."""
    logprobs = choice["logprobs"]
    if logprobs is None:
        return False
    if type(logprobs) is not dict:
        raise ConformError(f"{where}.logprobs is neither an object nor null")
    changed = False
    for key in ("content", "refusal"):
        tokens = logprobs.get(key, ...)
        if tokens is None:
            continue
        if type(tokens) is not list:
            logprobs[key] = None
            changed = True
            continue
        for index, entry in enumerate(tokens):
            changed |= _fix_token(entry, f"{where}.logprobs.{key}[{index}]", False)
    return changed


def text_content(value: Any, where: str) -> str:
    """Text given as content parts (``[{"type": "text", "text": ...}]``) as one string."""
    if type(value) is list and all(type(p) is dict and type(p.get("text")) is str for p in value):
        return "".join(p["text"] for p in value)
    raise ConformError(f"{where} is neither text nor null")
