"""``compatgate check --probe`` on an Anthropic provider: it lists the models at
``GET /v1/models`` with ``x-api-key`` and ``anthropic-version``, as the Models API says."""

from __future__ import annotations

import asyncio

import compatgate_anthropic
import orjson
from anthropic_support import UPSTREAM_KEY, UPSTREAM_MODEL, gateway_config

from compatgate import Gateway
from compatgate.check import probe
from compatgate.testing import Received, fake_upstream


def models_api(request: Received) -> tuple[int, dict]:
    if request.headers.get("x-api-key") != UPSTREAM_KEY:
        return 401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    if "anthropic-version" not in request.headers or request.path != "/v1/models" or request.query != "limit=1000":
        return 404, {"type": "error", "error": {"type": "not_found_error", "message": "not found"}}
    data = [{"type": "model", "id": UPSTREAM_MODEL, "display_name": "Claude", "created_at": "2025-02-19T00:00:00Z"},
            {"type": "model", "id": "claude-3-5-haiku-20241022", "display_name": "Haiku",
             "created_at": "2024-10-22T00:00:00Z"}]
    return 200, {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}


def test_probe_lists_the_models_with_the_anthropic_headers():
    with fake_upstream() as (fake, url):
        async def handler(request: Received, send):  # type: ignore[no-untyped-def]
            status, body = models_api(request)
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": orjson.dumps(body)})

        fake.handler = handler
        for base in (url, f"{url}/v1"):  # with or without /v1, as the provider accepts both
            gateway = Gateway(gateway_config(base), plugins=[compatgate_anthropic])
            lines, problems = asyncio.run(probe(gateway, 5))
            assert problems == [], problems
            assert any(line.startswith("provider claude: ok (GET ") and ": 2 models listed in " in line
                       for line in lines), lines
        wrong = gateway_config(url, provider={"api_key": "sk-ant-wrong"})
        _, problems = asyncio.run(probe(Gateway(wrong, plugins=[compatgate_anthropic]), 5))
    assert [p.level for p in problems] == ["error"]
    assert "HTTP 401" in problems[0].message and "invalid x-api-key" in problems[0].message
