"""Issue 14, defect 4: token limits hold inside a realtime session, response by response.

Before the operation table (commit 1ba4be6) a realtime session was admitted once, at its
handshake, with no tokens: a key limited to some tokens per minute could run any number of
responses in one session. Now each ``response.create`` is admitted (its output cap and the
input so far) before it goes upstream and counted when done; the one past the limit gets an
OpenAI-format ``error`` event (``rate_limit_exceeded``), the session closes with 1008, and the
upstream never sees it.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from ratelimit_support import KEYS, gateway_config
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from compatgate.testing import serve, serve_gateway

OUTPUT = 5000  # output tokens of each response (and the session's cap)


class RealtimeUpstream:
    """Answers each ``response.create`` with ``response.created``, a delta and ``response.done``
    (20 input, ``OUTPUT`` output tokens); keeps every event it received."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.closed = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        count = 0
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.closed.set()
                return
            event = json.loads(message["text"])
            self.received.append(event)
            if event["type"] == "response.create":
                count += 1
                usage = {"input_tokens": 20, "output_tokens": OUTPUT, "total_tokens": 20 + OUTPUT}
                for reply in ({"type": "response.created", "response": {"id": f"r{count}"}},
                              {"type": "response.output_text.delta", "delta": "Hi"},
                              {"type": "response.done", "response": {"id": f"r{count}", "status": "completed",
                                                                     "usage": usage}}):
                    await send({"type": "websocket.send", "text": json.dumps(reply)})


def test_token_limit_refuses_the_response_past_it(backend):
    fake = RealtimeUpstream()
    with serve(fake) as url, serve_gateway(gateway_config(url, {**backend, "tpm": 23_000})) as gw:
        target = gw.url.replace("http://", "ws://") + "/realtime?model=gpt-4o"
        done = 0
        refusal = None
        with connect(target, additional_headers={"Authorization": f"Bearer {KEYS[0]}"}) as socket:
            socket.send(json.dumps({"type": "session.update", "session": {"max_response_output_tokens": OUTPUT}}))
            with pytest.raises(ConnectionClosed) as closed:
                for _ in range(10):
                    socket.send(json.dumps({"type": "response.create"}))
                    while True:
                        event = json.loads(socket.recv(timeout=5))
                        if event["type"] in ("response.done", "error"):
                            break
                    if event["type"] == "error":
                        refusal = event
                        socket.recv(timeout=5)  # the close follows
                    done += 1
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert refusal is not None and refusal["error"]["code"] == "rate_limit_exceeded"
        assert done == 4  # 4 × (5000 + 20) fit in 23000; a fifth response's 5000 more do not
        assert fake.closed.wait(5)
        assert sum(e["type"] == "response.create" for e in fake.received) == 4
        records = gw.records(6)
        assert [r.status_code for r in records if r.outcome == "error"] == [429]
