"""The OpenAI rate-limit headers, and the durations they carry.

``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``: of all the windows a request went
through (its key's, its model's, its provider's; per minute and per day for tokens), the one
with the least remaining is reported for each kind, since it is the one that refuses first.
``reset`` is the time until that window is empty again (OpenAI: "until the rate limit resets to
its initial state"), written as OpenAI writes it: ``"1s"``, ``"6m0s"``, ``"250ms"``.
"""

from __future__ import annotations

from compatgate.http import reset_duration

from .backend import Decision, Plan

__all__ = ["format_duration", "rate_limit_headers"]


def format_duration(ms: float) -> str:
    """``ms`` milliseconds as OpenAI's reset headers write a duration (``"6m0s"``)."""
    return reset_duration(ms / 1000.0)


_RESETS: dict[int, str] = {}  # reset_ms -> its text: most responses repeat a few values
_RESETS_MAX = 4096


def _reset(ms: int) -> str:
    text = _RESETS.get(ms)
    if text is None:
        if len(_RESETS) >= _RESETS_MAX:
            _RESETS.clear()
        text = _RESETS[ms] = format_duration(ms)
    return text


def rate_limit_headers(plan: Plan, decision: Decision) -> dict[str, str]:
    """The headers for a request that went through ``plan`` (admitted, refused or peeked)."""
    requests: tuple[int, int, int] | None = None  # (remaining, limit, reset_ms)
    tokens: tuple[int, int, int] | None = None
    for window, state in zip(plan.windows, decision.windows, strict=True):
        limit = window.limit
        remaining = limit - state.used
        if remaining < 0:
            remaining = 0
        if window.name == "rpm":
            if requests is None or (remaining, limit) < requests[:2]:
                requests = (remaining, limit, state.reset_ms)
        elif tokens is None or (remaining, limit) < tokens[:2]:
            tokens = (remaining, limit, state.reset_ms)
    headers: dict[str, str] = {}
    if requests is not None:
        headers["x-ratelimit-limit-requests"] = str(requests[1])
        headers["x-ratelimit-remaining-requests"] = str(requests[0])
        headers["x-ratelimit-reset-requests"] = _reset(requests[2])
    if tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(tokens[1])
        headers["x-ratelimit-remaining-tokens"] = str(tokens[0])
        headers["x-ratelimit-reset-tokens"] = _reset(tokens[2])
    return headers
