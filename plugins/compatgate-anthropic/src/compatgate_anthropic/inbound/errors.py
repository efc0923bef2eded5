"""Gateway errors in Anthropic's error format: ``{"type": "error", "error": {"type", "message"},
"request_id"}``, as a response (`error_body`) or as a stream's ``error`` event (`error_event`).

The Anthropic type follows, in order: the Anthropic type an upstream error kept in ``code``
(the anthropic provider keeps it there), ``insufficient_quota`` -> ``billing_error`` with
status 402 (Anthropic clients do not retry it; they retry a 429), then the status:

=======  =========================  =================================================
status   type                       note
=======  =========================  =================================================
400      ``invalid_request_error``  (and any other 4xx without an entry here)
401      ``authentication_error``
402      ``billing_error``
403      ``permission_error``
404      ``not_found_error``
413      ``request_too_large``
429      ``rate_limit_error``       ``retry-after`` kept
500      ``api_error``              (and any other 5xx without an entry here)
502      ``api_error``              the upstream failed or could not be reached
503      ``overloaded_error``       sent as 529, Anthropic's status for it
504      ``timeout_error``          the upstream did not answer in time
529      ``overloaded_error``
=======  =========================  =================================================

Messages are kept as the gateway wrote them; the error's headers (``retry-after``, ``allow``,
rate limits) are kept.
"""

from __future__ import annotations

from typing import Any

import orjson

from compatgate import GatewayError, encode_event

__all__ = ["ANTHROPIC_TYPES", "anthropic_error", "error_body", "error_event"]

#: Anthropic's error types.
ANTHROPIC_TYPES = (
    "invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
    "request_too_large", "rate_limit_error", "api_error", "timeout_error", "overloaded_error",
)
_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
              403: "permission_error", 404: "not_found_error", 413: "request_too_large",
              429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "overloaded_error",
              504: "timeout_error", 529: "overloaded_error"}
# The status Anthropic answers each type with, where the gateway's may differ.
_STATUS_OF = {"overloaded_error": 529, "billing_error": 402, "timeout_error": 504}


def anthropic_error(error: GatewayError) -> tuple[int, str]:
    """The ``(status, Anthropic error type)`` for a gateway error."""
    status = error.status_code
    if error.code in ANTHROPIC_TYPES:
        kind = str(error.code)
    elif "insufficient_quota" in (error.type, error.code):
        kind = "billing_error"
    else:
        kind = _BY_STATUS.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    if kind in _STATUS_OF and (status >= 500 or kind == "billing_error"):
        status = _STATUS_OF[kind]
    return status, kind


def error_body(error: GatewayError, *, request_id: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    """The Anthropic error response for ``error``: status, JSON body and headers."""
    status, kind = anthropic_error(error)
    headers = {name.lower(): value for name, value in error.headers.items()}
    headers["content-type"] = "application/json"
    return status, orjson.dumps(_payload(kind, error.message, request_id)), headers


def error_event(error: GatewayError, *, request_id: str | None = None) -> bytes:
    """The ``event: error`` that ends a broken stream."""
    _, kind = anthropic_error(error)
    return encode_event(orjson.dumps(_payload(kind, error.message, request_id)), "error")


def _payload(kind: str, message: str, request_id: str | None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
