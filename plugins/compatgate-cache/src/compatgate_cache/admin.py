"""The admin route: ``POST /admin/cache/purge`` relative to where the gateway is mounted.

Registered only when an admin key is known: ``[plugins.cache] admin_key``, else
``[plugins.billing] admin_key``. Every request needs ``Authorization: Bearer <admin key>``
(compared in constant time), else 401; errors use the OpenAI error format. The body is a
JSON object (see `purge.parse_target`); the answer says how many entries went::

    {"object": "cache.purge", "deleted": 3, "namespace": "k:abc", "model": null,
     "backend": "memory", "shared": false}

``shared`` is false for the memory backend: the purge emptied only the process that answered.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from compatgate import AuthenticationError, GatewayError, InvalidRequestError, MethodNotAllowedError

from .backend import BackendUnavailable
from .purge import PurgeError, parse_target

if TYPE_CHECKING:
    from .plugin import Cache

__all__ = ["PURGE_PATH", "admin_routes"]

PURGE_PATH = "/admin/cache/purge"
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


class BackendError(GatewayError):
    status_code = 503
    type = "server_error"
    code = "cache_backend_unavailable"


def _error(error: GatewayError) -> Response:
    return Response(error.to_json(), error.status_code, media_type="application/json", headers=error.headers)


def admin_routes(cache: Cache) -> list[BaseRoute]:
    assert cache.admin_key is not None and cache.settings is not None
    admin_key = cache.admin_key.encode()
    backend = cache.settings.backend

    async def purge(request: Request) -> Response:
        try:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), admin_key):
                raise AuthenticationError(
                    "The cache admin API needs the admin key: Authorization: Bearer "
                    "<plugins.cache.admin_key, else plugins.billing.admin_key>.",
                    code="invalid_admin_key",
                )
            if request.method != "POST":
                raise MethodNotAllowedError(request.method, "POST")
            try:
                body = orjson.loads(await request.body())
            except orjson.JSONDecodeError:
                raise InvalidRequestError("the body must be JSON") from None
            if not isinstance(body, dict):
                raise InvalidRequestError("the body must be a JSON object")
            try:
                target = parse_target(body)
            except PurgeError as exc:
                raise InvalidRequestError(str(exc)) from None
            try:
                deleted = await cache.purge(target.namespace, target.model)
            except BackendUnavailable as exc:
                raise BackendError(f"The cache backend is unavailable: {exc}") from None
        except GatewayError as exc:
            return _error(exc)
        answer = {"object": "cache.purge", "deleted": deleted, **target.to_json(),
                  "backend": backend, "shared": backend == "redis"}  # fmt: skip
        return Response(orjson.dumps(answer), 200, media_type="application/json")

    return [Route(PURGE_PATH, purge, methods=_METHODS)]
