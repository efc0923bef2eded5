"""Gemini errors -> OpenAI errors.

Gemini answers ``{"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED",
"details": [...]}}`` (a Google RPC status). The HTTP status is kept; the ``status`` string
chooses the OpenAI ``type``; ``code`` is the ``ErrorInfo`` reason when there is one
(``api_key_invalid``), else the status, in lower case; a ``RetryInfo`` delay becomes
``Retry-After``. The same object inside a stream becomes an `UpstreamStreamError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from compatgate import UpstreamError, UpstreamStreamError
from compatgate.http import scrub, upstream_error

__all__ = ["http_error", "stream_error"]

_STATUSES: dict[str, tuple[int, str]] = {
    "INVALID_ARGUMENT": (400, "invalid_request_error"),
    "FAILED_PRECONDITION": (400, "invalid_request_error"),
    "OUT_OF_RANGE": (400, "invalid_request_error"),
    "UNAUTHENTICATED": (401, "authentication_error"),
    "PERMISSION_DENIED": (403, "permission_error"),
    "NOT_FOUND": (404, "invalid_request_error"),
    "ALREADY_EXISTS": (409, "invalid_request_error"),
    "ABORTED": (409, "api_error"),
    "RESOURCE_EXHAUSTED": (429, "rate_limit_error"),
    "CANCELLED": (499, "api_error"),
    "INTERNAL": (500, "api_error"),
    "UNKNOWN": (500, "api_error"),
    "DATA_LOSS": (500, "api_error"),
    "NOT_IMPLEMENTED": (501, "api_error"),
    "UNIMPLEMENTED": (501, "api_error"),
    "UNAVAILABLE": (503, "api_error"),
    "DEADLINE_EXCEEDED": (504, "timeout_error"),
}
_DELAY = re.compile(r"(\d+(?:\.\d+)?)s")


def http_error(status: int, content: bytes, secrets: Iterable[str | None]) -> UpstreamError:
    """The `UpstreamError` for a Gemini error answer with HTTP ``status``."""
    error = _error_object(content)
    if error is None:
        return upstream_error(status, content, secrets=secrets)
    message, type_, code, retry = _describe(error, status, secrets)
    result = UpstreamError(message, status_code=status if 400 <= status <= 599 else 502, type=type_, code=code)
    if retry is not None:
        result.headers["retry-after"] = str(retry)
    return result


def stream_error(error: Any, secrets: Iterable[str | None]) -> UpstreamStreamError:
    """The `UpstreamStreamError` for an error object found in a Gemini stream."""
    if not isinstance(error, Mapping):
        return UpstreamStreamError(scrub(f"The Gemini stream failed: {error}", secrets))
    code = error.get("code")
    message, type_, code, _ = _describe(error, code if isinstance(code, int) else 500, secrets)
    return UpstreamStreamError(message, type=type_, code=code)


def _error_object(content: bytes) -> Mapping[str, Any] | None:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and data:  # the JSON-array form of streamGenerateContent
        data = data[0]
    error = data.get("error") if isinstance(data, Mapping) else None
    return error if isinstance(error, Mapping) else None


def _describe(error: Mapping[str, Any], status: int, secrets: Iterable[str | None]) -> tuple[str, str, str | None, int | None]:
    """``(message, type, code, retry_after_seconds)`` of a Google RPC error object."""
    name = error.get("status") if isinstance(error.get("status"), str) else None
    known = _STATUSES.get(name or "")
    type_ = known[1] if known else ("invalid_request_error" if status < 500 else "api_error")
    message = error.get("message") if isinstance(error.get("message"), str) and error.get("message") else None
    if message is None:
        message = f"The Gemini API answered with {name or f'HTTP {status}'}."
    code = name.lower() if name else None
    retry = None
    details = error.get("details")
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, Mapping):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo") and isinstance(detail.get("reason"), str):
            code = detail["reason"].lower()
        elif kind.endswith("google.rpc.RetryInfo"):
            match = _DELAY.fullmatch(str(detail.get("retryDelay", "")))
            if match:
                retry = max(1, math.ceil(float(match.group(1))))
    return scrub(message, secrets), type_, code, retry
