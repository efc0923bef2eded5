"""Errors in Google's format: ``{"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT"}}``.

``status`` is the ``google.rpc.Code`` name Google uses for the HTTP status (`STATUS_NAMES`),
unless the error's own ``code`` already is such a name (an upstream Gemini error keeps its
``FAILED_PRECONDITION``...). ``details`` carry what Google's clients read: a
``google.rpc.RetryInfo`` with the ``Retry-After`` delay (the Gemini CLI waits that long before
retrying a 429), and a ``google.rpc.ErrorInfo`` whose ``reason`` is the gateway's error code in
upper case (``RATE_LIMIT_EXCEEDED``, ``INSUFFICIENT_QUOTA``, ``MODEL_NOT_FOUND``...), domain
``compatgate``.
"""

from __future__ import annotations

from typing import Any

import orjson

from compatgate import GatewayError

__all__ = ["STATUS_NAMES", "error_body", "error_object", "status_name"]

STATUS_NAMES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_CODES = frozenset({
    "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
    "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
})


def status_name(status: int) -> str:
    """The ``google.rpc.Code`` name for an HTTP status."""
    if status in STATUS_NAMES:
        return STATUS_NAMES[status]
    return "INVALID_ARGUMENT" if status < 500 else "UNAVAILABLE" if status in (529,) else "INTERNAL"


def error_object(error: GatewayError) -> dict[str, Any]:
    """``{"error": {...}}`` for ``error``."""
    code = error.code.upper() if isinstance(error.code, str) else None
    body: dict[str, Any] = {
        "code": error.status_code,
        "message": error.message,
        "status": code if code in _CODES else status_name(error.status_code),
    }
    details = []
    if code and code not in _CODES:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": code, "domain": "compatgate"})
    retry = error.headers.get("retry-after")
    if retry is not None and retry.isdigit():
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{int(retry)}s"})
    if details:
        body["details"] = details
    return {"error": body}


def error_body(error: GatewayError) -> tuple[int, bytes, dict[str, str]]:
    """``(status, body, headers)`` of the HTTP answer for ``error`` (its own headers, such as
    ``Retry-After`` and ``Allow``, kept)."""
    headers = {**error.headers, "content-type": "application/json; charset=UTF-8"}
    return error.status_code, orjson.dumps(error_object(error)), headers
