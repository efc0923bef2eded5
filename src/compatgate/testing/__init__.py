"""Helpers for testing gateways and plugins over real HTTP on loopback.

- `serve` runs any ASGI app (a gateway, a host app, a fake upstream) with uvicorn in a
  background thread and yields its base URL.
- `FakeUpstream` is an ASGI upstream whose answers a test scripts: JSON, raw SSE bytes (such as
  recorded provider streams) paced like a network, a reset or a stall mid-stream; it records
  what it received and notices when the gateway hangs up.
- `fake_upstream` serves a fresh `FakeUpstream` while the block runs: yields ``(fake, url)``.
- `read_body` reads a whole ASGI request body, for a fake upstream written by hand.
- `UsageLog` is a plugin keeping every usage record of its gateway; ``wait(count)`` polls
  until that many arrived (a stream records after its last byte, so the client may finish
  first), ``UsageLog.of(gateway)`` finds it among a gateway's plugins.
- `serve_gateway` builds a `Gateway` (with a `UsageLog` first among its plugins) and serves it,
  yielding a `ServedGateway`: the gateway, its URL, its usage log and ``client(key)``, an
  ``openai.OpenAI`` client without retries (subclass it to add a suite's own helpers).
- `require_service` skips a test with a clear reason when a service it needs (Redis,
  PostgreSQL, ...) is unreachable, and fails it instead when ``CI=true``;
  `delete_redis_keys` cleans up after a test that used Redis.
- `OpenAISchema` validates what the gateway emits against the official OpenAPI document.

Needs the ``testing`` extra (jsonschema, pyyaml) for `OpenAISchema` only, ``openai`` for
`ServedGateway.client` only, ``pytest`` for `require_service` only and ``redis`` for
`delete_redis_keys` only.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlsplit

import orjson
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from ..context import RequestContext
from ..gateway import Gateway
from ..hookspecs import hookimpl
from ..usage import UsageRecord
from .schema import OpenAISchema

if TYPE_CHECKING:
    import openai

__all__ = [
    "FakeUpstream",
    "OpenAISchema",
    "Received",
    "ServedGateway",
    "UsageLog",
    "delete_redis_keys",
    "fake_upstream",
    "read_body",
    "require_service",
    "serve",
    "serve_gateway",
    "service_unreachable",
]

ServedT = TypeVar("ServedT", bound="ServedGateway")
_PORTS = {"http": 80, "https": 443, "redis": 6379, "rediss": 6379, "postgresql": 5432}


@contextmanager
def serve(app: ASGIApp, *, lifespan: Literal["auto", "on", "off"] = "auto") -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) while the block runs; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan=lifespan, log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


async def read_body(receive: Receive) -> bytes:
    """The whole body of an ASGI HTTP request (for a fake upstream written by hand)."""
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if not message.get("more_body"):
            return body


@dataclass
class Received:
    """One request the fake upstream received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


Handler = Callable[[Received, Send], Awaitable[None]]


@dataclass
class FakeUpstream:
    """A scriptable upstream: set ``handler`` (or use the reply builders) before a request."""

    handler: Handler | None = None
    received: list[Received] = field(default_factory=list)
    disconnects: int = 0
    in_flight: int = 0
    hung_up: threading.Event = field(default_factory=threading.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        request = Received(scope["method"], scope["path"], scope["query_string"].decode(), headers, body)
        self.received.append(request)
        handler = self.handler or self.json_reply({"error": {"message": "no handler set"}}, status=500)
        self.in_flight += 1
        watcher = asyncio.ensure_future(self._watch(receive))
        try:
            await handler(request, send)
        except OSError:  # the gateway hung up while we were writing
            self._hang_up()
        finally:
            self.in_flight -= 1
            if not watcher.done():
                await asyncio.sleep(0.05)  # let a pending hang-up arrive before we stop watching
            watcher.cancel()

    async def _watch(self, receive: Receive) -> None:
        message = await receive()
        if message["type"] == "http.disconnect":
            self._hang_up()

    def _hang_up(self) -> None:
        if not self.hung_up.is_set():
            self.disconnects += 1
            self.hung_up.set()

    # -- reply builders -------------------------------------------------------------------

    @staticmethod
    def json_reply(body: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
        content = body if isinstance(body, bytes) else orjson.dumps(body)

        async def handler(request: Received, send: Send) -> None:
            raw = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
            raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": content})

        return handler

    @staticmethod
    def sse_reply(
        content: bytes,
        *,
        split: bytes = b"\n\n",
        delay: float = 0.0,
        then: str = "end",
        stall: float = 30.0,
        exact: bool = False,
        chunk_size: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Handler:
        """Send ``content`` event by event (split after each ``split``), ``delay`` apart.
        ``then``: ``"end"`` closes normally, ``"reset"`` breaks the connection without ending
        the body, ``"stall"`` keeps the connection open sending nothing for ``stall`` s.
        ``exact``: send the bytes as given (no separator added after the last event, none
        dropped); ``chunk_size``: send them byte for byte in slices of that many bytes
        instead; ``headers``: more response headers."""
        if chunk_size:
            pieces = [content[i:i + chunk_size] for i in range(0, len(content), chunk_size)]
        elif not split:
            pieces = [content]
        elif exact:
            pieces = [p for p in re.split(b"(?<=" + re.escape(split) + b")", content) if p]
        else:
            pieces = [p + split for p in content.split(split) if p]
        extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]

        async def handler(request: Received, send: Send) -> None:
            headers = [(b"content-type", b"text/event-stream; charset=utf-8"), *extra]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            for piece in pieces:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                if delay:
                    await asyncio.sleep(delay)
            if then == "reset":
                raise ConnectionResetError("fake upstream: reset mid-stream")
            if then == "stall":
                await asyncio.sleep(stall)
            await send({"type": "http.response.body", "body": b""})

        return handler


@contextmanager
def fake_upstream() -> Iterator[tuple[FakeUpstream, str]]:
    """A new `FakeUpstream`, served while the block runs: yields ``(fake, base URL)``."""
    fake = FakeUpstream()
    with serve(fake) as url:
        yield fake, url


class UsageLog:
    """A plugin keeping every ``record_usage`` call of its gateway (pass the class itself in
    ``Gateway(plugins=...)``)."""

    def __init__(self, gateway: Gateway | None = None) -> None:
        self.records: list[UsageRecord] = []

    @hookimpl
    def record_usage(self, ctx: RequestContext, record: UsageRecord) -> None:
        self.records.append(record)

    @classmethod
    def of(cls, gateway: Gateway) -> UsageLog:
        """The usage log among ``gateway``'s plugins."""
        return next(p for p in gateway.pm.get_plugins() if isinstance(p, cls))

    def wait(self, count: int = 1, timeout: float = 5.0) -> list[UsageRecord]:
        """The records, once at least ``count`` arrived (fails after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while len(self.records) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.records) >= count, f"expected {count} usage records, got {self.records}"
        return self.records


class ServedGateway:
    """A gateway served at ``url``. `client` uses ``default_key`` (None: the first of the
    configured ``api_keys``) and ``client_timeout``; a subclass may set either."""

    default_key: str | None = None
    client_timeout: float = 10.0

    def __init__(self, gateway: Gateway, url: str) -> None:
        self.gateway = gateway
        self.url = url

    @property
    def usage(self) -> UsageLog:
        """The gateway's `UsageLog` plugin."""
        return UsageLog.of(self.gateway)

    @property
    def key(self) -> str:
        """The client key `client` uses by default."""
        return self.default_key or self.gateway.config.gateway.api_keys[0]

    def client(self, key: str | None = None, **kwargs: Any) -> openai.OpenAI:
        """An OpenAI SDK client of this gateway that does not retry."""
        import openai

        kwargs.setdefault("timeout", self.client_timeout)
        return openai.OpenAI(api_key=key or self.key, base_url=self.url, max_retries=0, **kwargs)

    def records(self, count: int = 1, timeout: float = 5.0) -> list[UsageRecord]:
        """The usage records, once at least ``count`` arrived (see `UsageLog.wait`)."""
        return self.usage.wait(count, timeout)

    def close(self) -> None:
        """Called when `serve_gateway` stops serving; releases what a subclass opened."""


@contextmanager
def serve_gateway(
    config: Any,
    plugins: Iterable[object] = (),
    *,
    usage_log: bool = True,
    served: Callable[[Gateway, str], ServedT] = ServedGateway,  # type: ignore[assignment]
    mount: str = "",
) -> Iterator[ServedT]:
    """Serve ``Gateway(config, plugins=(UsageLog, *plugins))`` (no `UsageLog` when
    ``usage_log`` is false) while the block runs; yields ``served(gateway, url)``. With
    ``mount`` (``"/v1"``) the gateway is mounted there, as ``compatgate serve`` does, and
    ``url`` ends with it (Anthropic's clients, which add ``/v1``, take ``url`` without it)."""
    gateway = Gateway(config, plugins=(UsageLog, *plugins) if usage_log else tuple(plugins))
    app: ASGIApp = gateway
    if mount:
        from starlette.applications import Starlette
        from starlette.routing import Mount

        app = Starlette(routes=[Mount(mount, app=gateway)], lifespan=gateway.lifespan)
    with serve(app) as root:
        result = served(gateway, root + mount)
        try:
            yield result
        finally:
            result.close()


def service_unreachable(url: str, probe: Callable[[], object] | None = None) -> str | None:
    """Why the service at ``url`` cannot be used (None when it can): ``probe()`` raised, or by
    default a TCP connection to its host and port (or its scheme's usual port) failed in 2 s."""
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or _PORTS.get(parts.scheme, 0))
    try:
        if probe is None:
            socket.create_connection(address, 2).close()
        else:
            probe()
    except Exception as exc:  # noqa: BLE001 - any failure means: not reachable
        return f"{type(exc).__name__}: {exc}"
    return None


def require_service(
    kind: str, url: str, *, probe: Callable[[], object] | None = None, env: str | None = None
) -> str:
    """``url`` when the ``kind`` service there is reachable (see `service_unreachable`);
    otherwise skip the test, naming the problem and ``env`` (the variable that sets the URL),
    or fail it when ``CI=true``, where those tests must run."""
    problem = service_unreachable(url, probe)
    if problem is None:
        return url
    import pytest

    reason = f"{kind} at {url} is unreachable ({problem})" + (f"; set {env}" if env else "")
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the {kind} tests must run)")
    pytest.skip(reason)


def delete_redis_keys(url: str, pattern: str) -> None:
    """Delete the keys matching ``pattern`` from the Redis at ``url``, as far as it can (for
    test cleanup; needs the ``redis`` package)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    with suppress(redis.RedisError), client:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
