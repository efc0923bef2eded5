"""The /realtime WebSocket with a real WebSocket client against a fake realtime upstream."""

from __future__ import annotations

import json
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from support import CLIENT_KEY, UPSTREAM_KEY, gateway_config

from compatgate.testing import serve

DONE = {"type": "response.done", "response": {"id": "resp_1", "status": "completed",
                                              "usage": {"total_tokens": 30, "input_tokens": 20, "output_tokens": 10}}}


class RealtimeUpstream:
    """A realtime server: answers ``response.create`` with deltas and ``response.done``;
    ``close.please`` makes it close with code 4001."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.headers: dict[str, str] = {}
        self.query = ""
        self.close_code: int | None = None
        self.closed = threading.Event()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "websocket":
            return
        self.headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.query = scope["query_string"].decode()
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps({"type": "session.created"})})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.close_code = message.get("code")
                self.closed.set()
                return
            self.received.append(message.get("text") or "")
            kind = json.loads(message["text"])["type"]
            if kind == "response.create":
                for index in range(3):
                    delta = {"type": "response.output_text.delta", "delta": str(index)}
                    await send({"type": "websocket.send", "text": json.dumps(delta)})
                await send({"type": "websocket.send", "text": json.dumps(DONE)})
            elif kind == "close.please":
                await send({"type": "websocket.close", "code": 4001})
                self.closed.set()
                return


@pytest.fixture
def realtime(make_gateway):
    fake = RealtimeUpstream()
    with serve(fake) as url:
        gw = make_gateway(gateway_config(url))
        yield gw, fake, gw.url.replace("http://", "ws://") + "/realtime?model=gpt-4o"


def receive(socket, count: int) -> list[dict]:
    return [json.loads(socket.recv(timeout=5)) for _ in range(count)]


def test_session_relays_in_order_and_records_usage(realtime):
    gw, fake, url = realtime
    with connect(url, additional_headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as socket:
        assert receive(socket, 1) == [{"type": "session.created"}]
        for _ in range(2):
            socket.send(json.dumps({"type": "response.create"}))
            events = receive(socket, 4)
            assert [e.get("delta") for e in events[:3]] == ["0", "1", "2"] and events[3] == DONE
        for index in range(20):
            socket.send(json.dumps({"type": "conversation.item.create", "index": index}))
    assert fake.closed.wait(5)
    assert [json.loads(t).get("index") for t in fake.received[2:]] == list(range(20))
    assert fake.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert fake.query == "model=gpt-4o-2024-08-06"
    # Each response is recorded as it is done (so budgets settle inside the session), then the
    # session itself, without usage of its own.
    *responses, session = gw.records(3)
    for record in responses:
        assert (record.endpoint, record.outcome, record.model) == ("realtime", "ok", "gpt-4o")
        assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (20, 10, 30)
        assert record.response_id == "resp_1" and record.request_id.startswith(session.request_id + ".")
    assert (session.endpoint, session.outcome, session.usage) == ("realtime", "ok", None)
    time.sleep(0.2)
    assert len(gw.usage.records) == 3


def test_subprotocol_key_and_client_disconnect(realtime):
    gw, fake, url = realtime
    with connect(url, subprotocols=["realtime", f"openai-insecure-api-key.{CLIENT_KEY}"]) as socket:
        assert socket.subprotocol == "realtime"
        assert receive(socket, 1) == [{"type": "session.created"}]
        socket.send(json.dumps({"type": "session.update"}))
        time.sleep(0.1)
        socket.close(code=4002)  # mid-session
    assert fake.closed.wait(5), "the upstream never saw the client go away"
    assert fake.close_code == 4002
    assert gw.records(1)[0].endpoint == "realtime"


def test_upstream_close_code_reaches_client(realtime):
    gw, _, url = realtime
    with connect(url, additional_headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as socket:
        receive(socket, 1)
        socket.send(json.dumps({"type": "close.please"}))
        with pytest.raises(ConnectionClosed) as caught:
            socket.recv(timeout=5)
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 4001
    assert gw.records(1)[0].outcome == "error"


def test_bad_key_and_unknown_model(realtime):
    gw, _, url = realtime
    for headers, target, code in (({"Authorization": "Bearer nope"}, url, "invalid_api_key"),
                                  ({"Authorization": f"Bearer {CLIENT_KEY}"}, url.replace("gpt-4o", "nope"),
                                   "model_not_found")):
        with connect(target, additional_headers=headers) as socket:
            event = json.loads(socket.recv(timeout=5))
            assert event["type"] == "error" and event["error"]["code"] == code
            with pytest.raises(ConnectionClosed) as caught:
                socket.recv(timeout=5)
            assert caught.value.rcvd.code == 1008
    records = gw.records(2)
    assert [r.outcome for r in records] == ["error", "error"]
