"""What the compatgate-anthropic tests share: paths, keys, configurations, a usage log, a
served gateway, and builders for the Anthropic answers a fake upstream gives."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import compatgate_anthropic
import httpx2
import orjson
from starlette.types import Send

from compatgate.testing import FakeUpstream, OpenAISchema, Received, ServedGateway

Handler = Callable[[Received, Send], Awaitable[None]]

SHARED = Path(os.environ.get("COMPATGATE_SHARED", Path(__file__).resolve().parents[3].parent / "shared"))
RECORDINGS_DIR = SHARED / "fixtures" / "anthropic-sse"
RECORDINGS = sorted(p.name for p in RECORDINGS_DIR.glob("*") if p.suffix in (".txt", ".sse"))
UPSTREAM_KEY = "sk-ant-upstream-SECRET-0123456789"
CLIENT_KEY = "sk-client-1"
MODEL = "claude"
UPSTREAM_MODEL = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
PLUGINS: tuple[object, ...] = (compatgate_anthropic,)


def recording(name: str) -> bytes:
    return (RECORDINGS_DIR / name).read_bytes()


def recorded_events(content: bytes) -> list[dict[str, Any]]:
    """The JSON events of a recorded Anthropic stream, in order."""
    events = []
    for block in re.split(rb"\n\n+", content):
        for line in block.split(b"\n"):
            if line.startswith(b"data: "):
                events.append(orjson.loads(line[6:]))
    return events


def gateway_config(
    upstream_url: str, *, provider: dict[str, Any] | None = None, models: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One anthropic provider and its model. Entry points are not loaded, so that other plugins
    installed alongside play no part: the tests pass this plugin in (see `PLUGINS`)."""
    return {
        "gateway": {"api_keys": [CLIENT_KEY], "load_entrypoints": False},
        "providers": {
            "claude": {"type": "anthropic", "base_url": upstream_url, "api_key": UPSTREAM_KEY,
                       "read_timeout": 5.0, "connect_timeout": 2.0, **(provider or {})},
        },
        "models": models or [{"name": MODEL, "provider": "claude", "upstream_model": UPSTREAM_MODEL}],
    }


class Served(ServedGateway):
    """A gateway served on loopback, with its usage log and clients."""

    default_key = CLIENT_KEY

    def post(self, body: dict[str, Any]) -> httpx2.Response:
        return httpx2.post(f"{self.url}/chat/completions", json=body, timeout=10,
                           headers={"authorization": f"Bearer {CLIENT_KEY}"})

    def stream(self, body: dict[str, Any]) -> tuple[httpx2.Response, list[bytes]]:
        """POST a streamed request; the response and the data payload of every event."""
        with httpx2.stream("POST", f"{self.url}/chat/completions", json={**body, "stream": True},
                           timeout=10, headers={"authorization": f"Bearer {CLIENT_KEY}"}) as response:
            payloads = [line[6:].encode() for line in response.iter_lines() if line.startswith("data: ")]
        return response, payloads


def chunks(payloads: list[bytes], schema: OpenAISchema) -> list[dict[str, Any]]:
    """The chunks of a stream that completed, each checked against the OpenAI schema."""
    assert payloads and payloads[-1] == b"[DONE]", payloads[-1:]
    decoded = [orjson.loads(p) for p in payloads[:-1]]
    for chunk in decoded:
        schema.validate("CreateChatCompletionStreamResponse", chunk)
    return decoded


def stream_error(payloads: list[bytes], schema: OpenAISchema) -> dict[str, Any]:
    """The error event that ended a broken stream (checked: no [DONE], OpenAI error format)."""
    assert b"[DONE]" not in payloads
    error = orjson.loads(payloads[-1])
    schema.validate("ErrorResponse", error)
    for payload in payloads[:-1]:
        schema.validate("CreateChatCompletionStreamResponse", orjson.loads(payload))
    return error["error"]


# -- what the fake upstream answers ---------------------------------------------------------


def exact_reply(content: bytes, *, piece: int = 0, stall: float = 20.0, **options: Any) -> Handler:
    """Send ``content`` byte for byte: event by event (``piece=0``, nothing added, nothing
    removed) or in slices of ``piece`` bytes; see `FakeUpstream.sse_reply` for ``options``
    (``then``: "end", "reset" or "stall"; ``delay``, ``headers``)."""
    return FakeUpstream.sse_reply(content, exact=True, chunk_size=piece or None, stall=stall, **options)


def sse(*events: dict[str, Any]) -> bytes:
    """An Anthropic event stream: each event named after its type."""
    return b"".join(
        b"event: " + str(event.get("type", "message")).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"
        for event in events
    )


def message_start(usage: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    message = {"id": "msg_test", "type": "message", "role": "assistant", "content": [],
               "model": UPSTREAM_MODEL, "stop_reason": None, "stop_sequence": None,
               "usage": usage or {"input_tokens": 10, "output_tokens": 1}, **fields}
    return {"type": "message_start", "message": message}


def block_start(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def delta(index: int, **fields: Any) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": fields}


def block_stop(index: int) -> dict[str, Any]:
    return {"type": "content_block_stop", "index": index}


def message_end(stop_reason: str = "end_turn", output_tokens: int = 5) -> tuple[dict[str, Any], ...]:
    return (
        {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
         "usage": {"output_tokens": output_tokens}},
        {"type": "message_stop"},
    )


def message(*content: dict[str, Any], stop_reason: str = "end_turn", **usage: int) -> dict[str, Any]:
    """A non-streamed Anthropic Message."""
    return {"id": "msg_test", "type": "message", "role": "assistant", "model": UPSTREAM_MODEL,
            "content": list(content), "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5, **usage}}
