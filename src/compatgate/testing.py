"""Helpers for testing gateways and plugins over real HTTP on loopback.

- `serve` runs any ASGI app (a gateway, a host app, a fake upstream) with uvicorn in a
  background thread and yields its base URL.
- `FakeUpstream` is an ASGI upstream whose answers a test scripts: JSON, raw SSE bytes (such as
  recorded provider streams) paced like a network, a reset or a stall mid-stream; it records
  what it received and notices when the gateway hangs up.
- `OpenAISchema` validates what the gateway emits against the official OpenAPI document.

Needs the ``testing`` extra (jsonschema, pyyaml) for `OpenAISchema` only.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["FakeUpstream", "OpenAISchema", "Received", "serve"]


@contextmanager
def serve(app: ASGIApp, *, lifespan: str = "auto") -> Iterator[str]:
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
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
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
    ) -> Handler:
        """Send ``content`` event by event (split after each ``split``), ``delay`` apart.
        ``then``: ``"end"`` closes normally, ``"reset"`` breaks the connection without ending
        the body, ``"stall"`` keeps the connection open sending nothing for ``stall`` s."""
        pieces = [p + split for p in content.split(split) if p] if split else [content]

        async def handler(request: Received, send: Send) -> None:
            headers = [(b"content-type", b"text/event-stream; charset=utf-8")]
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


class OpenAISchema:
    """Validates instances against ``components/schemas`` of an OpenAPI 3.1 document.

    OpenAPI's ``nullable: true`` is rewritten into ``anyOf [X, {type: null}]`` first, since a
    strict JSON Schema 2020-12 validator ignores it.
    """

    def __init__(self, path: str | Path) -> None:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(path, encoding="utf-8") as file:
            document = yaml.load(file, Loader=loader)
        self.components = _nullable(document["components"])
        self._validators: dict[str, Any] = {}

    def errors(self, name: str, instance: Any) -> list[str]:
        """Every way ``instance`` fails the schema ``name`` (empty when valid)."""
        validator = self._validators.get(name)
        if validator is None:
            from jsonschema import Draft202012Validator

            schema = {"$ref": f"#/components/schemas/{name}", "components": self.components}
            validator = self._validators[name] = Draft202012Validator(schema)
        return [
            f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in validator.iter_errors(instance)
        ]

    def validate(self, name: str, instance: Any) -> None:
        """Raise AssertionError naming every violation of schema ``name``."""
        errors = self.errors(name, instance)
        if errors:
            raise AssertionError(f"not a valid {name}:\n  " + "\n  ".join(errors[:20]))


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted
