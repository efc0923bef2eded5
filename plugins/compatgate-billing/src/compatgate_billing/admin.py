"""The admin HTTP API: JSON under ``/admin`` relative to where the gateway is mounted.

Mounted only when ``admin_key`` is configured; every request needs
``Authorization: Bearer <admin_key>`` (compared in constant time), else 401. Errors use the
OpenAI error format. The API keys' secrets appear only in the answers to creating and rotating
a key; nothing else ever returns them (the database does not have them).

    GET    /admin/keys[?owner=O&include_deleted=true]   list keys
    POST   /admin/keys                                  create (201; the only "secret" but rotate's)
    GET    /admin/keys/{id}                             show
    DELETE /admin/keys/{id}                             delete
    POST   /admin/keys/{id}/disable | enable | rotate
    POST   /admin/keys/{id}/balance                     {"amount": 5, "note": ..., "adjustment": false}
    GET    /admin/keys/{id}/credits                     the key's credit entries, newest first
    GET    /admin/usage[?group_by=key,model,day&since=&until=&key=]
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from compatgate import AuthenticationError, GatewayError, InvalidRequestError, MethodNotAllowedError, NotFoundError

from .manage import KeyManager, KeyNotFound, KeySpec, OperationError, parse_amount, parse_time
from .store import GROUPS, Store, now_ms

if TYPE_CHECKING:
    from .plugin import Billing

__all__ = ["admin_routes"]

Handler = Callable[[Request], Awaitable[Response]]
logger = logging.getLogger("compatgate.billing")

_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status, media_type="application/json")


def _error(error: GatewayError) -> Response:
    return Response(
        error.to_json(), error.status_code, media_type="application/json", headers=error.headers
    )


class AdminAPI:
    """The handlers, bound to one `Billing` (its store exists once the gateway started)."""

    def __init__(self, billing: Billing) -> None:
        self.billing = billing
        assert billing.settings is not None and billing.settings.admin_key is not None
        self._admin_key = billing.settings.admin_key.encode()

    @property
    def manager(self) -> KeyManager:
        assert self.billing.keys is not None, "the gateway has not started"
        return self.billing.keys

    @property
    def store(self) -> Store:
        assert self.billing.store is not None, "the gateway has not started"
        return self.billing.store

    def endpoint(self, handlers: Mapping[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
        """One path: check the admin key, then dispatch on the method (JSON 405 otherwise)."""

        async def serve(request: Request) -> Response:
            try:
                self._check(request)
                handler = handlers.get(request.method)
                if handler is None:
                    allowed = ", ".join(handlers)
                    raise MethodNotAllowedError(request.method, allowed)
                return await handler(request)
            except GatewayError as exc:
                return _error(exc)
            except KeyNotFound as exc:
                return _error(NotFoundError(str(exc), code="key_not_found"))
            except OperationError as exc:
                return _error(InvalidRequestError(str(exc)))
            except Exception:  # a bug: logged, answered in the API's format (never a stack trace)
                logger.exception("compatgate-billing: admin request %s %s failed", request.method, request.url.path)
                return _error(GatewayError("The admin API failed to handle this request.", code="internal_error"))

        return serve

    def _check(self, request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._admin_key
        ):
            raise AuthenticationError(
                "The admin API needs the admin key: Authorization: Bearer <plugins.billing.admin_key>.",
                code="invalid_admin_key",
            )

    # -- handlers -----------------------------------------------------------------------------

    async def list_keys(self, request: Request) -> Response:
        query = request.query_params
        keys = await self.store.list_keys(
            owner=query.get("owner"), include_deleted=query.get("include_deleted") in ("1", "true")
        )
        now = now_ms()
        return _json({"object": "list", "data": [key.to_json(now) for key in keys]})

    async def create_key(self, request: Request) -> Response:
        key, secret = await self.manager.create(KeySpec.from_json(await _body(request)))
        return _json({**key.to_json(now_ms()), "secret": secret}, 201)

    async def show_key(self, request: Request) -> Response:
        key = await self.manager.get(request.path_params["key_id"])
        return _json(key.to_json(now_ms()))

    async def delete_key(self, request: Request) -> Response:
        key = await self.manager.delete(request.path_params["key_id"])
        return _json(key.to_json(now_ms()))

    async def disable_key(self, request: Request) -> Response:
        key = await self.manager.set_enabled(request.path_params["key_id"], False)
        return _json(key.to_json(now_ms()))

    async def enable_key(self, request: Request) -> Response:
        key = await self.manager.set_enabled(request.path_params["key_id"], True)
        return _json(key.to_json(now_ms()))

    async def rotate_key(self, request: Request) -> Response:
        key, secret = await self.manager.rotate(request.path_params["key_id"])
        return _json({**key.to_json(now_ms()), "secret": secret})

    async def add_balance(self, request: Request) -> Response:
        body = await _body(request)
        if not isinstance(body, dict) or "amount" not in body:
            raise OperationError('the body must be a JSON object with "amount" (currency units)')
        note = body.get("note")
        if note is not None and not isinstance(note, str):
            raise OperationError("note must be a string")
        key, entry = await self.manager.add_balance(
            request.path_params["key_id"],
            parse_amount(body["amount"]),
            adjustment=body.get("adjustment") is True,
            note=note,
        )
        return _json({"key": key.to_json(now_ms()), "credit": entry.to_json()})

    async def credits(self, request: Request) -> Response:
        key = await self.manager.get(request.path_params["key_id"])
        entries = await self.store.credits(key.id)
        return _json({"object": "list", "data": [entry.to_json() for entry in entries]})

    async def usage(self, request: Request) -> Response:
        query = request.query_params
        group_by = [g for g in query.get("group_by", "key,model,day").split(",") if g]
        if any(g not in GROUPS for g in group_by):
            raise OperationError(f"group_by takes a comma-separated list of {', '.join(GROUPS)}")
        since, until = query.get("since"), query.get("until")
        totals = await self.store.usage_totals(
            group_by,
            since_ms=parse_time(since, past=True) if since else None,
            until_ms=parse_time(until, past=True) if until else None,
            key_id=query.get("key"),
        )
        return _json({"object": "list", "data": totals})


async def _body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise OperationError("the body must be JSON") from None


def admin_routes(billing: Billing) -> list[BaseRoute]:
    api = AdminAPI(billing)
    table: dict[str, dict[str, Handler]] = {
        "/admin/keys": {"GET": api.list_keys, "POST": api.create_key},
        "/admin/keys/{key_id}": {"GET": api.show_key, "DELETE": api.delete_key},
        "/admin/keys/{key_id}/disable": {"POST": api.disable_key},
        "/admin/keys/{key_id}/enable": {"POST": api.enable_key},
        "/admin/keys/{key_id}/rotate": {"POST": api.rotate_key},
        "/admin/keys/{key_id}/balance": {"POST": api.add_balance},
        "/admin/keys/{key_id}/credits": {"GET": api.credits},
        "/admin/usage": {"GET": api.usage},
    }
    return [
        Route(path, api.endpoint(handlers), methods=_METHODS) for path, handlers in table.items()
    ]
