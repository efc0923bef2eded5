"""``compatgate check --probe`` on a Gemini provider: ``GET /{api_version}/models`` with
``x-goog-api-key``; the names lose their ``models/`` prefix before they are compared."""

from __future__ import annotations

import asyncio

import compatgate_gemini
import orjson
from gemini_support import UPSTREAM_KEY, gemini_config

from compatgate import Gateway
from compatgate.check import probe
from compatgate.testing import Received, fake_upstream

LISTED = ["gemini-2.5-flash", "gemini-3-flash-preview", "gemini-embedding-001"]


def test_probe_lists_the_models_with_the_gemini_key():
    with fake_upstream() as (fake, url):
        async def handler(request: Received, send):  # type: ignore[no-untyped-def]
            if request.headers.get("x-goog-api-key") != UPSTREAM_KEY or "key=" in request.query:
                status, body = 400, {"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}}
            elif request.path == "/v1beta/models" and request.query == "pageSize=1000":
                status, body = 200, {"models": [{"name": f"models/{name}", "version": "001"} for name in LISTED]}
            else:
                status, body = 404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": orjson.dumps(body)})

        fake.handler = handler
        config = gemini_config(url)
        config["models"].append({"name": "typo", "provider": "google", "upstream_model": "gemini-2.5-flsh"})
        lines, problems = asyncio.run(probe(Gateway(config, plugins=[compatgate_gemini]), 5))
        assert any(line.startswith("provider google: ok (GET ") and ": 3 models listed in " in line
                   for line in lines), lines
        assert [str(p) for p in problems] == [(
            "warning: model 'typo': provider google does not list the upstream model 'gemini-2.5-flsh' "
            "(did you mean 'gemini-2.5-flash'?)"
        )]
        wrong = gemini_config(url, api_key="AIza-wrong")
        _, problems = asyncio.run(probe(Gateway(wrong, plugins=[compatgate_gemini]), 5))
    assert [p.level for p in problems] == ["error"] and "API key not valid." in problems[0].message
