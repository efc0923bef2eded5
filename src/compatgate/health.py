"""``GET /health/live`` and ``GET /health/ready``: probes for load balancers and Kubernetes.

Both are served by the gateway relative to where it is mounted (``/v1/health/ready`` under
``app.mount("/v1", gateway)``), and by ``compatgate serve`` at the top level too; neither asks
for an API key nor goes through the request hooks. *Live* answers 200 while the process serves
HTTP. *Ready* asks every `check_ready` hook (the gateway's own: providers started, the
PostgreSQL response store reachable; plugins': their databases and Redis) and answers 200
``{"status": "ok", "checks": {...}}`` when no component reports a problem, else 503
``{"status": "unavailable", "checks": {...}}`` with each component's problem. The answers are
public: checks report what is wrong in words (``"unreachable (ConnectionRefusedError)"``),
never a URL, a host name or a secret; the details go to the log.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from .exceptions import MethodNotAllowedError

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = ["CHECK_TIMEOUT", "HealthEndpoint", "health_routes", "readiness", "send_json"]

logger = logging.getLogger("compatgate.health")

CHECK_TIMEOUT = 5.0  # seconds one check_ready implementation may take before it counts as failed
_LIVE = orjson.dumps({"status": "ok"})


async def readiness(gateway: Gateway) -> tuple[bool, dict[str, str]]:
    """Whether ``gateway`` is ready, and every component's state (``"ok"`` or its problem).

    The `check_ready` implementations run concurrently, each within `CHECK_TIMEOUT`; one that
    raises or times out reports a problem under its plugin's name (the exception is logged)."""
    impls = list(reversed(gateway.pm.hook.check_ready.get_hookimpls()))
    results = await asyncio.gather(*(_check(gateway, impl) for impl in impls))
    checks: dict[str, str] = {}
    for result in results:
        for component, problem in result.items():
            if problem is not None or component not in checks:
                checks[component] = "ok" if problem is None else str(problem)
    return all(state == "ok" for state in checks.values()), checks


async def _check(gateway: Gateway, impl: Any) -> Mapping[str, str | None]:
    name = gateway.pm.get_name(impl.plugin) or repr(impl.plugin)
    kwargs = {"gateway": gateway}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            result = impl.function(*[kwargs[arg] for arg in impl.argnames])
            if inspect.isawaitable(result):
                result = await result
    except TimeoutError:
        logger.warning("the readiness check of %s took more than %g s", name, CHECK_TIMEOUT)
        return {name: f"check timed out after {CHECK_TIMEOUT:g} s"}
    except Exception as exc:
        logger.exception("the readiness check of %s failed", name)
        return {name: f"check failed ({type(exc).__name__})"}
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        logger.error("check_ready of %s returned %r, not a mapping", name, type(result).__name__)
        return {name: "check returned no mapping"}
    return result


class HealthEndpoint:
    """The ASGI app of ``/health/live`` (``ready=False``) or ``/health/ready``."""

    def __init__(self, gateway: Gateway, *, ready: bool) -> None:
        self.gateway = gateway
        self.ready = ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            error = MethodNotAllowedError(method, "GET", scope.get("path"))
            await send_json(send, error.status_code, error.to_json(), method, allow="GET, HEAD")
            return
        if not self.ready:
            await send_json(send, 200, _LIVE, method)
            return
        ready, checks = await readiness(self.gateway)
        body = orjson.dumps({"status": "ok" if ready else "unavailable", "checks": checks})
        await send_json(send, 200 if ready else 503, body, method)


async def send_json(send: Send, status: int, body: bytes, method: str = "GET", *, allow: str | None = None) -> None:
    """Answer ``body`` (JSON) with ``status``, uncached; no body for ``HEAD``."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if allow:
        headers.append((b"allow", allow.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


def health_routes(gateway: Gateway) -> list[BaseRoute]:
    """The gateway's ``/health/live`` and ``/health/ready`` routes (relative to its mount)."""
    return [
        Route("/health/live", HealthEndpoint(gateway, ready=False)),
        Route("/health/ready", HealthEndpoint(gateway, ready=True)),
    ]
