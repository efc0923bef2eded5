"""``GET /health/live`` and ``/health/ready`` of a mounted gateway, and the `check_ready` hook."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from support import CLIENT_KEY, Served, gateway_config

from compatgate import Gateway, hookimpl
from compatgate import health as health_module
from compatgate.health import readiness
from compatgate.testing import serve, serve_gateway

SECRET_URL = "postgresql://operator:db-password-0123@10.1.2.3:5432/gateway"


class Flaky:
    """Reports what the test sets in ``problem``; ``mode`` ``"raise"`` or ``"hang"`` fails."""

    def __init__(self, gateway: Gateway) -> None:
        self.problem: str | None = None
        self.mode = "answer"

    @hookimpl
    async def check_ready(self) -> dict[str, str | None]:
        if self.mode == "raise":
            raise RuntimeError(f"cannot connect to {SECRET_URL}")
        if self.mode == "hang":
            await asyncio.sleep(60)
        return {"flaky.store": self.problem}


def flaky_of(served: Served) -> Flaky:
    return next(p for p in served.gateway.pm.get_plugins() if isinstance(p, Flaky))


ANSWER = {
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def test_probes_need_no_key_and_record_nothing(gw: Served, upstream):
    live = httpx2.get(f"{gw.url}/health/live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    assert live.headers["content-type"] == "application/json" and live.headers["cache-control"] == "no-store"
    ready = httpx2.get(f"{gw.url}/health/ready")
    assert ready.status_code == 200 and ready.json() == {"status": "ok", "checks": {"gateway": "ok"}}
    head = httpx2.head(f"{gw.url}/health/ready")
    assert head.status_code == 200 and head.content == b""
    refused = httpx2.post(f"{gw.url}/health/live")
    assert refused.status_code == 405 and refused.json()["error"]["code"] == "method_not_allowed"
    assert refused.headers["allow"] == "GET, HEAD"
    upstream[0].handler = upstream[0].json_reply(ANSWER)
    gw.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert [r.endpoint for r in gw.records(1)] == ["chat.completions"]  # the probes recorded nothing


def test_a_component_with_a_problem_makes_the_gateway_unready(upstream):
    with serve_gateway(gateway_config(upstream[1]), (Flaky,), served=Served) as served:
        flaky = flaky_of(served)
        assert httpx2.get(f"{served.url}/health/ready").json()["checks"] == {"flaky.store": "ok", "gateway": "ok"}
        flaky.problem = "unreachable (ConnectionRefusedError)"
        ready = httpx2.get(f"{served.url}/health/ready")
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable",
                                "checks": {"flaky.store": "unreachable (ConnectionRefusedError)", "gateway": "ok"}}
        assert httpx2.get(f"{served.url}/health/live").status_code == 200  # alive all the same


def test_a_failing_or_hanging_check_reports_its_plugin_and_no_secret(upstream, monkeypatch, caplog):
    monkeypatch.setattr(health_module, "CHECK_TIMEOUT", 0.3)
    with serve_gateway(gateway_config(upstream[1]), (Flaky,), served=Served) as served:
        flaky = flaky_of(served)
        name = served.gateway.pm.get_name(flaky)
        assert name == f"{Flaky.__module__}:Flaky"
        flaky.mode = "raise"
        failed = httpx2.get(f"{served.url}/health/ready")
        assert failed.status_code == 503 and failed.json()["checks"][name] == "check failed (RuntimeError)"
        assert "10.1.2.3" not in failed.text and "db-password" not in failed.text
        assert any(f"readiness check of {name} failed" in r.message for r in caplog.records)
        flaky.mode = "hang"
        hung = httpx2.get(f"{served.url}/health/ready", timeout=10)
        assert hung.status_code == 503 and hung.json()["checks"][name] == "check timed out after 0.3 s"


def test_not_ready_before_the_start_and_after_the_shutdown(upstream):
    gateway = Gateway(gateway_config(upstream[1]))

    async def states() -> list[tuple[bool, dict[str, str]]]:
        before = await readiness(gateway)
        async with gateway.lifespan():
            during = await readiness(gateway)
        return [before, during, await readiness(gateway)]

    before, during, after = asyncio.run(states())
    assert before == (False, {"gateway": "not started"})
    assert during == (True, {"gateway": "ok"})
    assert after == (False, {"gateway": "not started"})


def test_mounted_without_its_lifespan_the_probe_starts_it(upstream):
    gateway = Gateway(gateway_config(upstream[1]))
    app = FastAPI()
    app.mount("/team/v1", gateway)
    with serve(app) as url:
        ready = httpx2.get(f"{url}/team/v1/health/ready")
        assert ready.status_code == 200 and ready.json()["checks"] == {"gateway": "ok"}
        assert httpx2.get(f"{url}/health/ready").status_code == 404  # the host's, not the gateway's


def test_an_unreachable_postgres_response_store(upstream):
    pytest.importorskip("asyncpg")
    with socket_closed() as port:
        url = f"postgresql://operator:db-password-0123@127.0.0.1:{port}/gateway"
        config: dict[str, Any] = gateway_config(upstream[1], response_store="postgres", response_store_url=url)
        with serve_gateway(config, served=Served) as served:
            ready = httpx2.get(f"{served.url}/health/ready", timeout=10)
    assert ready.status_code == 503
    problem = ready.json()["checks"]["response_store"]
    assert problem.startswith("unreachable (") and "db-password" not in ready.text and str(port) not in ready.text


class socket_closed:
    """A loopback port nothing listens on, for the duration of the block."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        return None


def test_the_key_is_not_needed_but_not_refused(gw: Served):
    answer = httpx2.get(f"{gw.url}/health/ready", headers={"authorization": f"Bearer {CLIENT_KEY}x"})
    assert answer.status_code == 200
