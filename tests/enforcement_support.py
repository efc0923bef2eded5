"""What the enforcement tests (issue 14's defects) share: a plugin that sees what admission
sees, hand-built multipart bodies (the SDK cannot send a duplicate field), upstream answers."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx2
import orjson
from support import CLIENT_KEY

from compatgate import RequestContext, hookimpl

if TYPE_CHECKING:
    from compatgate.metering import Units

AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}
MESSAGES = [{"role": "user", "content": "Hello there"}]


class Admissions:
    """A plugin noting, for each request admitted, its endpoint, ``ctx.units`` and ``ctx.sent``
    (what billing and rate limits reserve against, and what goes upstream)."""

    def __init__(self, gateway: object = None) -> None:
        self.seen: list[tuple[str, Units | None, dict[str, Any]]] = []

    @hookimpl
    def admit_request(self, ctx: RequestContext) -> None:
        # (read with getattr: the same tests run against the gateway before ctx.units existed)
        self.seen.append((ctx.endpoint, getattr(ctx, "units", None), dict(getattr(ctx, "sent", ctx.body))))

    @classmethod
    def of(cls, gw: Any) -> Admissions:
        return next(p for p in gw.gateway.pm.get_plugins() if isinstance(p, cls))

    @property
    def units(self) -> Units | None:
        assert self.seen, "no request was admitted"
        return self.seen[-1][1]


def multipart(*parts: tuple[str, bytes | str, str | None]) -> tuple[bytes, str]:
    """A multipart/form-data body of ``(name, value, filename)`` parts in the order given
    (duplicates kept): the body and its content type."""
    boundary = f"enforce{uuid.uuid4().hex}"
    out = b""
    for name, value, filename in parts:
        data = value.encode() if isinstance(value, str) else value
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def post_form(url: str, *parts: tuple[str, bytes | str, str | None], timeout: float = 10) -> httpx2.Response:
    body, content_type = multipart(*parts)
    return httpx2.post(url, content=body, headers={**AUTH, "content-type": content_type}, timeout=timeout)


def post_json(url: str, body: Any, *, raw: bytes | None = None, timeout: float = 10,
              headers: dict[str, str] | None = None) -> httpx2.Response:
    content = raw if raw is not None else orjson.dumps(body)
    return httpx2.post(url, content=content, timeout=timeout,
                       headers={**AUTH, "content-type": "application/json", **(headers or {})})


def chat_answer(content: str = "Hi.", prompt: int = 5, completion: int = 2) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1727346172, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def chat_chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    data = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(data) + b"\n\n"


def response_event(kind: str, **fields: Any) -> bytes:
    """One event of an upstream's own Responses event stream."""
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **fields}) + b"\n\n"


def error_shape(response: httpx2.Response, status: int, param: str | None = None) -> dict[str, Any]:
    """The OpenAI error object of ``response``, checked to be one with ``status`` (and ``param``)."""
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert {"message", "type", "param", "code"} <= error.keys(), error
    if param is not None:
        assert error["param"] == param, error
    return error
