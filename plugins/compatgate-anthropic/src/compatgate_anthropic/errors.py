"""Anthropic errors and rate-limit headers, in OpenAI terms.

Anthropic's HTTP statuses are OpenAI's but for ``529 overloaded_error``, which becomes 503.
The OpenAI ``type`` follows the Anthropic error type (table below) and ``code`` keeps the
Anthropic type, so nothing is lost. ``anthropic-ratelimit-<kind>-<field>`` headers become
``x-ratelimit-<field>-<kind>``, their RFC 3339 reset times turned into OpenAI's durations.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from compatgate import UpstreamError, UpstreamStreamError
from compatgate.http import reset_duration

__all__ = ["OPENAI_TYPES", "map_upstream_error", "rate_limit_headers", "stream_error"]

#: Anthropic error type -> OpenAI error type.
OPENAI_TYPES: Mapping[str, str] = {
    "invalid_request_error": "invalid_request_error",
    "authentication_error": "authentication_error",
    "billing_error": "insufficient_quota",
    "permission_error": "permission_error",
    "not_found_error": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "rate_limit_error": "rate_limit_error",
    "api_error": "server_error",
    "timeout_error": "timeout_error",
    "overloaded_error": "server_error",
}

# Anthropic's status for each type, to name an error whose body said nothing (a proxy's page).
_STATUS_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                 403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                 429: "rate_limit_error", 500: "api_error", 504: "timeout_error",
                 529: "overloaded_error"}

_OVERLOADED = 529
_RATE_LIMIT = "anthropic-ratelimit-"
_FIELDS = ("limit", "remaining", "reset")


def map_upstream_error(error: UpstreamError) -> UpstreamError:
    """The OpenAI form of an error the Anthropic API answered (``Retry-After`` kept)."""
    status = 503 if error.status_code == _OVERLOADED else error.status_code
    anthropic_type = error.type if error.type in OPENAI_TYPES else _STATUS_TYPES.get(error.status_code)
    if anthropic_type is None:
        openai_type = "server_error" if status >= 500 else error.type
        code = error.code
    else:
        openai_type, code = OPENAI_TYPES[anthropic_type], anthropic_type
    return UpstreamError(
        error.message, status_code=status, type=openai_type, code=code, param=error.param,
        headers=error.headers,
    )


def stream_error(event: Mapping[str, Any]) -> UpstreamStreamError:
    """The error to end a stream with, for an ``event: error`` the upstream sent mid-stream."""
    error = event.get("error")
    details = error if isinstance(error, Mapping) else {}
    message = details.get("message")
    anthropic_type = details.get("type")
    code = anthropic_type if isinstance(anthropic_type, str) else None
    if not isinstance(message, str) or not message:
        message = "The upstream stream reported an error."
    return UpstreamStreamError(
        message,
        status_code=503 if code == "overloaded_error" else None,
        type=OPENAI_TYPES.get(code or "", "server_error"),
        code=code,
    )


def rate_limit_headers(headers: Mapping[str, str], now: float | None = None) -> dict[str, str]:
    """OpenAI ``x-ratelimit-*`` headers for the ``anthropic-ratelimit-*`` ones in ``headers``:
    ``anthropic-ratelimit-requests-remaining`` -> ``x-ratelimit-remaining-requests`` (same
    for ``tokens``, ``input-tokens``, ``output-tokens``); a reset time becomes the duration
    until then (``"1m30s"``, ``"250ms"``), measured from ``now`` (default: the clock)."""
    translated: dict[str, str] = {}
    for name, value in headers.items():
        name = name.lower()
        if not name.startswith(_RATE_LIMIT):
            continue
        kind, _, field = name[len(_RATE_LIMIT):].rpartition("-")
        if not kind or field not in _FIELDS:
            continue
        if field == "reset":
            value = _until(value, time.time() if now is None else now)
        translated[f"x-ratelimit-{field}-{kind}"] = value
    return translated


def _until(timestamp: str, now: float) -> str:
    try:
        moment = datetime.fromisoformat(timestamp.strip())
    except ValueError:
        return timestamp  # not RFC 3339: relay it as it came
    if moment.tzinfo is None:
        return timestamp
    return reset_duration(moment.timestamp() - now)

