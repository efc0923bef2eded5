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


def rate_limit_headers(plan: Plan, decision: Decision) -> dict[str, str]:
    """The headers for a request that went through ``plan`` (admitted, refused or peeked)."""
    best: dict[str, tuple[int, int, int]] = {}  # kind -> (remaining, limit, reset_ms)
    for window, state in zip(plan.windows, decision.windows, strict=True):
        remaining = max(0, window.limit - state.used)
        current = best.get(window.kind)
        if current is None or (remaining, window.limit) < current[:2]:
            best[window.kind] = (remaining, window.limit, state.reset_ms)
    headers: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        if kind in best:
            remaining, limit, reset_ms = best[kind]
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
            headers[f"x-ratelimit-reset-{kind}"] = format_duration(reset_ms)
    return headers
