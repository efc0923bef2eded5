"""The base of the scripted fake upstreams: routing, key checks, recording, serving.

A `ScriptedUpstream` is a `compatgate.testing.FakeUpstream` handler: it keeps every request
(``fake.received``), routes it by method and path suffix to a protocol method of the subclass,
checks the client's key, and keeps what went wrong in ``problems`` (a wrong key, a request to
an endpoint the protocol does not have) so that a test fails on it (`check`). `capture` turns a
request into a JSON-able record with secrets masked, as saved under ``captures/``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode

import orjson
from starlette.types import Send

from compatgate.testing import FakeUpstream, Received, serve

from .script import Script, Turn

__all__ = ["SECRET_HEADERS", "ScriptedUpstream", "capture", "sse_event"]

SECRET_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie",
                            "proxy-authorization", "chatgpt-account-id"})
_SECRET_QUERY = frozenset({"key", "api_key", "access_token"})

Route = Callable[[Received, Send], Awaitable[None]]


def _mask(value: str) -> str:
    return f"<masked {len(value)} chars>"


def capture(request: Received) -> dict[str, Any]:
    """``request`` as a JSON-able record: method, path, query, headers (secrets masked), body
    (parsed JSON, else text)."""
    headers = {name: _mask(value) if name in SECRET_HEADERS else value
               for name, value in sorted(request.headers.items())}
    query = urlencode([(k, _mask(v) if k in _SECRET_QUERY else v)
                       for k, v in parse_qsl(request.query, keep_blank_values=True)])
    body: Any = None
    if request.body:
        try:
            body = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            body = request.body.decode("utf-8", "replace")
    return {"method": request.method, "path": request.path, "query": query,
            "headers": headers, "body": body}


def sse_event(data: Any, event: str | None = None, *, separator: str = "\n\n") -> bytes:
    """One server-sent event: an optional ``event:`` line, then ``data:`` with compact JSON."""
    head = f"event: {event}\n" if event else ""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"{head}data: {payload}{separator}".encode()


class ScriptedUpstream:
    """Subclasses set ``routes``: ``(method, path suffix, method name)``, first match wins;
    ``model_path``: the path suffix of a model turn; and `turn`, the protocol-neutral view of
    one."""

    routes: tuple[tuple[str, str, str], ...] = ()
    protocol = "?"
    model_path: str | tuple[str, ...] = "?"

    def __init__(self, script: Script, *, key: str | None = None) -> None:
        self.script = script
        self.key = key
        self.problems: list[str] = []
        self.fake = FakeUpstream(handler=self._dispatch)
        self.url = ""
        self.on_request: Callable[[Received], None] | None = None

    @property
    def received(self) -> list[Received]:
        return self.fake.received

    @contextmanager
    def served(self) -> Iterator[Self]:
        """Serve this fake on loopback while the block runs (``self.url`` is its root)."""
        with serve(self.fake) as url:
            self.url = url
            yield self

    def calls(self, suffix: str = "") -> list[Received]:
        """The requests whose path ends with ``suffix``."""
        return [r for r in self.received if r.path.endswith(suffix)]

    def turn(self, request: Received) -> Turn:
        raise NotImplementedError

    def turns(self) -> list[Turn]:
        """Every model turn this fake answered, protocol-neutral (tools declared, stream...)."""
        return [self.turn(r) for r in self.received if r.method == "POST" and r.path.endswith(self.model_path)]

    def check(self) -> None:
        """Fail on anything wrong this fake or its script saw."""
        seen = "\n  ".join(f"{r.method} {r.path}?{r.query}" for r in self.received)
        assert not self.problems, "\n".join(self.problems) + f"\nrequests:\n  {seen}"
        self.script.check()

    def presented_key(self, request: Received) -> str | None:
        """The key the client sent, however its protocol sends it."""
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:]
        return request.headers.get("x-api-key") or request.headers.get("x-goog-api-key")

    async def _dispatch(self, request: Received, send: Send) -> None:
        if self.on_request is not None:
            self.on_request(request)
        for method, suffix, name in self.routes:
            if request.method == method and request.path.endswith(suffix):
                if self.key is not None and self.presented_key(request) != self.key:
                    self.problems.append(f"{request.method} {request.path}: wrong or no key")
                    await self.error(send, 401, "invalid key")
                    return
                await getattr(self, name)(request, send)
                return
        self.problems.append(f"unexpected {request.method} {request.path} for {self.protocol}")
        await self.error(send, 404, f"no route {request.method} {request.path}")

    async def error(self, send: Send, status: int, message: str) -> None:
        """An error in this protocol's format (subclasses override the body)."""
        await self.json(send, {"error": {"message": message}}, status)

    @staticmethod
    async def json(send: Send, body: Any, status: int = 200) -> None:
        await FakeUpstream.json_reply(body, status=status)(None, send)  # type: ignore[arg-type]

    @staticmethod
    async def sse(send: Send, events: list[bytes], content_type: str = "text/event-stream") -> None:
        head = [(b"content-type", content_type.encode()), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
