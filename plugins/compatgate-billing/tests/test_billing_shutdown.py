"""SIGTERM to a real ``compatgate serve`` process in the middle of a stream billed to a virtual
key: the client gets the whole stream and ``[DONE]``, the ledger gets its row (written at
shutdown: the writer batches for a second), and ``/health/ready`` reported the store before."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx2
import orjson
from billing_support import (
    SERVER_SECRET,
    SHARED,
    Database,
    billing_config,
    gateway_processes,
    write_config,
)
from compatgate_billing import KeyManager, KeySpec, Store

RECORDING = SHARED / "fixtures" / "openai-sse" / "7e5ea4d12e7cc064399b6631415e65923f182256b6e6b752950a3aaa2ad2320a.bin"


def text_of(events: list[bytes]) -> str:
    chunks = [orjson.loads(event.removeprefix(b"data: ")) for event in events]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def create_key(db: Database) -> tuple[str, str]:
    async def create(store: Store) -> tuple[str, str]:
        key, secret = await KeyManager(store, SERVER_SECRET.encode()).create(KeySpec.build(budget_micro=10**9))
        return key.id, secret

    return db.run(create)


def test_sigterm_mid_stream_loses_neither_the_stream_nor_its_ledger_row(db: Database, upstream, tmp_path: Path):
    fake, url = upstream
    recording = RECORDING.read_bytes()
    fake.handler = fake.sse_reply(recording, delay=0.15)  # about 3 s: the signal comes mid-stream
    config = write_config(billing_config(url, db, batch_seconds=1.0), tmp_path)
    with gateway_processes(config, 1) as (process,):
        ready = httpx2.get(f"{process.url}/health/ready", timeout=10)
        assert ready.status_code == 200 and ready.json()["checks"]["billing"] == "ok", ready.text
        key_id, key = create_key(db)
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Where?"}], "stream": True}
        with httpx2.stream("POST", f"{process.url}/chat/completions", json=body, timeout=30,
                           headers={"authorization": f"Bearer {key}"}) as response:
            assert response.status_code == 200
            request_id = response.headers["x-request-id"]
            data = iter(response.iter_bytes())
            received = [next(data)]
            process.process.send_signal(signal.SIGTERM)
            received += list(data)
        assert process.stop() in (0, -signal.SIGTERM)
        output = process.output()
    events = b"".join(received).split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    assert text_of(events[:-2]) == text_of(recording.split(b"\n\n")[:-2])  # all of it
    rows = db.fetch("SELECT request_id, key_id, status, streamed, prompt_tokens, completion_tokens, "
                    "estimated FROM billing_usage")
    assert [tuple(row) for row in rows] == [(request_id, key_id, "ok", True, 79, 14, False)]
    assert output.index("Shutting down") < output.index("Application shutdown complete")
    assert key not in output and SERVER_SECRET not in output


def test_not_ready_until_the_store_is_open(db: Database, tmp_path: Path):
    import asyncio

    from billing_support import billing_config as config_for

    from compatgate import Gateway
    from compatgate.health import readiness

    gateway = Gateway(config_for("http://127.0.0.1:9", db) | {"gateway": {"api_keys": ["k"]}})

    async def states() -> list[tuple[bool, dict[str, str]]]:
        before = await readiness(gateway)
        async with gateway.lifespan():
            during = await readiness(gateway)
        return [before, during]

    before, during = asyncio.run(states())
    assert before == (False, {"billing": "store not open", "gateway": "not started"})
    assert during == (True, {"billing": "ok", "gateway": "ok"})
