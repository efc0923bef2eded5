"""Exceptions raised by compatgate and by plugins.

Every error a client can see is a `GatewayError`: it knows its HTTP status and renders itself in
the OpenAI error format ``{"error": {"message", "type", "param", "code"}}``. Plugins raise these
(or subclasses) from any hook to refuse a request; the gateway turns them into the response.

Hierarchy::

    ConfigError                       start-up: the configuration is wrong (never a response)
    GatewayError                      any error answered to a client
    ├── InvalidRequestError           400 invalid_request_error
    │   └── RequestTooLargeError      413 request_too_large
    ├── AuthenticationError           401 invalid_api_key
    ├── PermissionDeniedError         403 model_not_allowed (or another code)
    ├── NotFoundError                 404 not_found / unsupported_endpoint
    │   └── ModelNotFoundError        404 model_not_found
    ├── MethodNotAllowedError         405 method_not_allowed (with Allow)
    ├── RateLimitError                429 rate_limit_exceeded (with Retry-After)
    │   └── InsufficientQuotaError    429 insufficient_quota
    └── UpstreamError                 the upstream failed: its status (502 when it gave none)
        ├── UpstreamUnavailableError  502 the upstream could not be reached
        ├── UpstreamTimeoutError      504 the upstream did not answer in time
        └── UpstreamStreamError       the stream broke after it had started
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "GatewayError",
    "InsufficientQuotaError",
    "InvalidRequestError",
    "MethodNotAllowedError",
    "ModelNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "UpstreamError",
    "UpstreamStreamError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
]


class ConfigError(Exception):
    """The configuration cannot be used; the message says what is wrong and where."""


class GatewayError(Exception):
    """An error answered to the client in the OpenAI error format."""

    status_code: int = 500
    type: str = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})

    def to_dict(self) -> dict[str, Any]:
        """The body of the error response: ``{"error": {...}}``."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


class InvalidRequestError(GatewayError):
    status_code = 400
    type = "invalid_request_error"


class RequestTooLargeError(InvalidRequestError):
    status_code = 413
    code = "request_too_large"


class AuthenticationError(GatewayError):
    status_code = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status_code = 403
    type = "invalid_request_error"
    code = "model_not_allowed"


class NotFoundError(GatewayError):
    status_code = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"


class MethodNotAllowedError(GatewayError):
    """405 for ``method`` where only ``allowed`` (e.g. ``"GET, POST"``) is served; the message
    names ``path`` when given."""

    status_code = 405
    type = "invalid_request_error"
    code = "method_not_allowed"

    def __init__(self, method: str, allowed: str, path: str | None = None) -> None:
        where = f"on {path}" if path else "here"
        super().__init__(f"Method {method} is not allowed {where}; use {allowed}.", headers={"allow": allowed})


class RateLimitError(GatewayError):
    status_code = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        if retry_after is not None:
            self.headers.setdefault("retry-after", str(max(1, round(retry_after + 0.49))))


class InsufficientQuotaError(RateLimitError):
    type = "insufficient_quota"
    code = "insufficient_quota"


class UpstreamError(GatewayError):
    """The upstream answered with an error, or failed; ``status_code`` is the upstream's."""

    status_code = 502
    type = "upstream_error"
    code = "upstream_error"


class UpstreamUnavailableError(UpstreamError):
    status_code = 502
    code = "upstream_unavailable"


class UpstreamTimeoutError(UpstreamError):
    status_code = 504
    type = "timeout_error"
    code = "upstream_timeout"


class UpstreamStreamError(UpstreamError):
    """The upstream stream broke (reset, truncation, invalid data) after it had started."""

    code = "upstream_stream_error"
