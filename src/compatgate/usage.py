"""Token usage, and the record of one finished request that `record_usage` hooks receive."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Attempt", "Outcome", "Usage", "UsageRecord", "estimate_prompt_tokens", "estimate_tokens"]

Outcome = Literal["ok", "error", "aborted"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one request; ``cached_tokens``, ``reasoning_tokens`` and ``cache_write_tokens``
    when the upstream says. ``estimated`` is True when the upstream never reported the usage
    (a stream the client aborted) and the gateway estimated it (see `estimate_tokens`)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_tokens: int | None = None
    estimated: bool = False

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None) -> Usage | None:
        """Read an OpenAI ``usage`` object (chat, completions or embeddings); None if absent.
        ``prompt_tokens_details.cache_write_tokens`` (in OpenAI's schema; providers that bill
        cache writes, such as Anthropic, report them there) becomes ``cache_write_tokens``."""
        if not isinstance(usage, Mapping):
            return None
        # The Responses and Realtime APIs name them input and output tokens.
        named = "input" if "input_tokens" in usage else "prompt"
        output = "output" if named == "input" else "completion"
        prompt = _int(usage.get(f"{named}_tokens"))
        completion = _int(usage.get(f"{output}_tokens"))
        total = _int(usage.get("total_tokens")) or prompt + completion
        prompt_details = usage.get(f"{named}_tokens_details")
        completion_details = usage.get(f"{output}_tokens_details")
        cached = prompt_details.get("cached_tokens") if isinstance(prompt_details, Mapping) else None
        written = prompt_details.get("cache_write_tokens") if isinstance(prompt_details, Mapping) else None
        reasoning = (
            completion_details.get("reasoning_tokens")
            if isinstance(completion_details, Mapping)
            else None
        )
        return cls(
            prompt, completion, total, _int_or_none(cached), _int_or_none(reasoning), _int_or_none(written)
        )

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI ``usage`` object for this usage (details only when known)."""
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens is not None:
            usage["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.cache_write_tokens is not None:
            usage.setdefault("prompt_tokens_details", {})["cache_write_tokens"] = self.cache_write_tokens
        if self.reasoning_tokens is not None:
            usage["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return usage


@dataclass(frozen=True, slots=True)
class Attempt:
    """One call to an upstream, as `HTTPProvider.send` records it in ``ctx.attempts``:
    ``status_code`` is the upstream's (or 502/504 when it could not be reached or timed out),
    ``error`` the error message when it failed, ``latency_ms`` the time to its response headers.
    """

    provider: str
    upstream_model: str | None
    status_code: int
    error: str | None
    latency_ms: float


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What happened to one request, handed once to every `record_usage` hook.

    ``status_code`` is the HTTP status the client received (200 for a stream that later broke);
    ``outcome`` says how it ended: ``"ok"``, ``"error"`` (refused, upstream error, broken
    stream) or ``"aborted"`` (the client went away). ``usage`` is the upstream's count, None when
    it never said (an aborted stream before its usage chunk, an error). Times are milliseconds;
    ``time_to_first_token_ms`` is None for non-streamed requests and streams that sent nothing.
    ``attempts`` lists every upstream call made for the request, in order (retries included).
    ``error_code`` is the OpenAI error ``code`` the client received (``rate_limit_exceeded``,
    ``insufficient_quota``, ``upstream_timeout``...), None without one. ``finish_reasons`` (one
    per finished choice, in the order they came), ``response_model`` and ``response_id`` are
    what the answer said, read where the gateway already looks (no extra parsing). ``cache``
    is what a cache did (``"hit"``, ``"miss"``, ``"bypass"``; None without a cache): on a hit
    (`cached`) no upstream call was made and ``usage`` is the cached answer's.
    """

    request_id: str
    endpoint: str
    key_id: str | None
    model: str
    provider: str | None
    upstream_model: str | None
    status_code: int
    outcome: Outcome
    streamed: bool
    usage: Usage | None
    latency_ms: float
    time_to_first_token_ms: float | None = None
    error: str | None = None
    attempts: tuple[Attempt, ...] = ()
    error_code: str | None = None
    finish_reasons: tuple[str, ...] = ()
    response_model: str | None = None
    response_id: str | None = None
    cache: str | None = None

    @property
    def cached(self) -> bool:
        """Whether the answer came from a cache (``cache == "hit"``)."""
        return self.cache == "hit"

    @property
    def prompt_tokens(self) -> int:
        return self.usage.prompt_tokens if self.usage else 0

    @property
    def completion_tokens(self) -> int:
        return self.usage.completion_tokens if self.usage else 0

    @property
    def total_tokens(self) -> int:
        return self.usage.total_tokens if self.usage else 0


def estimate_tokens(characters: int) -> int:
    """A documented rough estimate: one token per four characters (rounded up)."""
    return (characters + 3) // 4


def estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    """Estimate the prompt tokens of a request body before it goes upstream (for admission
    control): the characters of every message's text, the prompt or input, and the tools,
    through `estimate_tokens`, plus four tokens of framing per message."""
    characters = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            characters += _characters(message.get("content") if isinstance(message, Mapping) else message)
            characters += 16
    for key in ("prompt", "input", "instructions"):
        characters += _characters(body.get(key))
    tools = body.get("tools")
    if tools:
        characters += len(repr(tools))
    return estimate_tokens(characters)


def _characters(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_characters(item) for item in value)
    if isinstance(value, Mapping):
        text = value.get("text") if "text" in value else value.get("content")
        return _characters(text) if text is not None else 0
    if isinstance(value, int):
        return 4  # a token id
    return 0


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
