"""``strict`` conformance: objects rebuilt with the schema's fields only, in OpenAI's order.

Applied to an object the fixers already made valid. Every field the schema does not define is
dropped (vendor extras such as vLLM's ``stop_reason``/``prompt_logprobs``/``kv_transfer_params``,
llama.cpp's ``timings``, ``reasoning_content``/``reasoning``, LM Studio's ``stats``), so a
decoder that refuses unknown fields accepts the bytes; fields the schema defines are kept as
they are, in the order OpenAI writes them. A chat chunk choice always carries ``logprobs``
(null when the upstream sent none) and an empty ``tool_calls`` list is left out, as OpenAI does.
A legacy completion's chat-style logprobs (llama.cpp's ``{"content": [...]}``) become the
legacy ``tokens``/``token_logprobs``/``top_logprobs`` lists.
"""

from __future__ import annotations

from typing import Any

__all__ = ["canonical_chat", "canonical_chunk", "canonical_completion", "canonical_embeddings"]

# A shape: (key, nested shape or None to copy as is, default or _SKIP when omitted if absent).
Shape = tuple[tuple[str, Any, Any], ...]
_SKIP = object()


def _list(item: Shape) -> tuple[str, Shape]:
    return ("list", item)


_TOP = (("token", None, _SKIP), ("logprob", None, _SKIP), ("bytes", None, _SKIP))
_TOKEN = (*_TOP, ("top_logprobs", _list(_TOP), _SKIP))
_LOGPROBS = (("content", _list(_TOKEN), _SKIP), ("refusal", _list(_TOKEN), _SKIP))
_USAGE: Shape = (
    ("prompt_tokens", None, _SKIP), ("completion_tokens", None, _SKIP), ("total_tokens", None, _SKIP),
    ("prompt_tokens_details", (
        ("cached_tokens", None, _SKIP), ("audio_tokens", None, _SKIP), ("text_tokens", None, _SKIP),
        ("image_tokens", None, _SKIP), ("cache_write_tokens", None, _SKIP)), _SKIP),
    ("completion_tokens_details", (
        ("reasoning_tokens", None, _SKIP), ("audio_tokens", None, _SKIP),
        ("accepted_prediction_tokens", None, _SKIP), ("rejected_prediction_tokens", None, _SKIP),
        ("text_tokens", None, _SKIP)), _SKIP),
)
_FUNCTION = (("name", None, _SKIP), ("arguments", None, _SKIP))
_CALL = (("id", None, _SKIP), ("type", None, _SKIP), ("function", _FUNCTION, _SKIP),
         ("custom", (("name", None, _SKIP), ("input", None, _SKIP)), _SKIP))
_MESSAGE = (
    ("role", None, _SKIP), ("content", None, _SKIP), ("refusal", None, _SKIP),
    ("tool_calls", _list(_CALL), _SKIP), ("function_call", _FUNCTION, _SKIP),
    ("annotations", None, _SKIP), ("audio", None, _SKIP),
)
_CHAT = (
    ("id", None, _SKIP), ("object", None, _SKIP), ("created", None, _SKIP), ("model", None, _SKIP),
    ("choices", _list((("index", None, _SKIP), ("message", _MESSAGE, _SKIP),
                       ("logprobs", _LOGPROBS, _SKIP), ("finish_reason", None, _SKIP))), _SKIP),
    ("usage", _USAGE, _SKIP), ("service_tier", None, _SKIP), ("system_fingerprint", None, _SKIP),
    ("metadata", None, _SKIP), ("moderation", None, _SKIP),
)
_DELTA = (
    ("role", None, _SKIP), ("content", None, _SKIP), ("function_call", _FUNCTION, _SKIP),
    ("tool_calls", _list((("index", None, _SKIP), *_CALL[:3])), _SKIP), ("refusal", None, _SKIP),
)
_CHUNK = (
    ("id", None, _SKIP), ("object", None, _SKIP), ("created", None, _SKIP), ("model", None, _SKIP),
    ("service_tier", None, _SKIP), ("system_fingerprint", None, _SKIP),
    ("choices", _list((("index", None, _SKIP), ("delta", _DELTA, _SKIP),
                       ("logprobs", _LOGPROBS, None), ("finish_reason", None, _SKIP))), _SKIP),
    ("usage", _USAGE, _SKIP), ("obfuscation", None, _SKIP), ("moderation", None, _SKIP),
)
_COMPLETION_LOGPROBS = (("tokens", None, _SKIP), ("token_logprobs", None, _SKIP),
                        ("top_logprobs", None, _SKIP), ("text_offset", None, _SKIP))
_COMPLETION = (
    ("id", None, _SKIP), ("object", None, _SKIP), ("created", None, _SKIP), ("model", None, _SKIP),
    ("system_fingerprint", None, _SKIP),
    ("choices", _list((("text", None, _SKIP), ("index", None, _SKIP),
                       ("logprobs", _COMPLETION_LOGPROBS, _SKIP), ("finish_reason", None, _SKIP))), _SKIP),
    ("usage", _USAGE, _SKIP),
)
_EMBEDDINGS = (
    ("object", None, _SKIP),
    ("data", _list((("object", None, _SKIP), ("index", None, _SKIP), ("embedding", None, _SKIP))), _SKIP),
    ("model", None, _SKIP),
    ("usage", (("prompt_tokens", None, _SKIP), ("total_tokens", None, _SKIP)), _SKIP),
)


def _pick(value: Any, shape: Any) -> Any:
    if shape is None or value is None:
        return value
    if shape[0] == "list":
        return [_pick(item, shape[1]) for item in value] if type(value) is list else value
    if type(value) is not dict:
        return value
    out: dict[str, Any] = {}
    for key, sub, default in shape:
        if key in value:
            out[key] = _pick(value[key], sub)
        elif default is not _SKIP:
            out[key] = default
    return out


def canonical_chat(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _pick(data, _CHAT)
    for choice in out["choices"]:
        if choice["message"].get("tool_calls") == []:
            del choice["message"]["tool_calls"]
    return out


def canonical_chunk(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _pick(data, _CHUNK)
    for choice in out["choices"]:
        if choice["delta"].get("tool_calls") == []:
            del choice["delta"]["tool_calls"]
    return out


def canonical_completion(data: dict[str, Any]) -> dict[str, Any]:
    for choice in data["choices"]:
        logprobs = choice.get("logprobs")
        if type(logprobs) is dict and type(logprobs.get("content")) is list and "tokens" not in logprobs:
            choice["logprobs"] = _legacy_logprobs(logprobs["content"])
    out: dict[str, Any] = _pick(data, _COMPLETION)
    return out


def canonical_embeddings(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = _pick(data, _EMBEDDINGS)
    return out


def _legacy_logprobs(tokens: list[Any]) -> dict[str, Any]:
    """Chat-style token log probabilities as the legacy completion lists."""
    entries = [t for t in tokens if type(t) is dict and type(t.get("token")) is str
               and type(t.get("logprob")) in (int, float)]
    tops = []
    for entry in entries:
        alternatives = entry.get("top_logprobs")
        tops.append({
            t["token"]: t["logprob"] for t in alternatives or ()
            if type(t) is dict and type(t.get("token")) is str and type(t.get("logprob")) in (int, float)
        })
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": tops,
    }
