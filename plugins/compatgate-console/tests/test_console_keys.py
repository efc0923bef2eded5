"""What operators do with keys and what the pages show: settings, rate limits and budgets set
through the forms and honoured by the gateway, revocation, the request log (filters, paging,
CSV, prompts only with ``log_prompts``), the request examples run for real, provider health
with the router's cooldowns, and the console mounted in a host app."""

from __future__ import annotations

import csv
import html
import io
import os
import re
import subprocess
import sys
import time

from console_support import ADMIN_KEY, Visitor, chat, console_config, serve_console, text_of
from starlette.applications import Starlette
from starlette.routing import Mount

from compatgate import Gateway
from compatgate.testing import serve
from compatgate_console import console_app


def _wait_rows(visitor: Visitor, count: int, path: str = "/console/api/log") -> list[dict]:
    deadline = time.monotonic() + 20
    while True:
        rows = visitor.get(path).json()["data"]
        if len(rows) >= count:
            return rows
        assert time.monotonic() < deadline, f"{len(rows)} of {count} ledger rows arrived"
        time.sleep(0.1)


def test_key_settings_budgets_and_revocation(upstream, db):
    with serve_console(console_config(upstream[1], db)) as (_, url):
        operator = Visitor(url)
        operator.sign_in(ADMIN_KEY)
        key_id, key = operator.create_key(name="team a", owner="a@example.com", allowed_models="gpt-4o*",
                                          rpm="100", expires="30d")
        page = text_of(operator.get(f"/console/keys/{key_id}"))
        assert "team a" in page and 'value="100"' in page and 'value="gpt-4o*"' in page and key not in page
        assert chat(url, key, "other-model").status_code == 403  # allowed models hold
        assert chat(url, key, "gpt-4o").status_code == 200
        changed = operator.post(f"/console/keys/{key_id}/update", {
            "name": "team a2", "owner": "a@example.com", "allowed_models": "other-model, gpt-4o",
            "expires": "", "tpm": "5000", "tier": ""})
        assert changed.status_code == 303
        page = text_of(operator.get(f"/console/keys/{key_id}"))
        assert "team a2" in page and 'value="5000"' in page and 'name="rpm" inputmode="numeric" pattern="[0-9]*" value=""' in page
        assert chat(url, key, "other-model").status_code == 200
        bad = operator.post(f"/console/keys/{key_id}/update", {"name": "x", "rpm": "-3"})
        assert bad.status_code == 400 and "rpm must be a positive whole number" in text_of(bad)
        # an unlimited key gets a budget, then a top-up, then runs dry
        assert operator.post(f"/console/keys/{key_id}/budget", {"budget": "0.000001"}).status_code == 303
        assert chat(url, key, "gpt-4o").status_code == 429  # the worst case no longer fits
        assert operator.post(f"/console/keys/{key_id}/balance", {"amount": "5", "note": "invoice 7"}).status_code == 303
        page = text_of(operator.get(f"/console/keys/{key_id}"))
        assert "invoice 7" in page and "topup" in page and "budget" in page
        assert chat(url, key, "gpt-4o").status_code == 200
        negative = operator.post(f"/console/keys/{key_id}/balance", {"amount": "-1"})
        assert negative.status_code == 400 and "top-up must be positive" in text_of(negative)
        # disabled, enabled, revoked: the gateway follows at once
        operator.post(f"/console/keys/{key_id}/disable")
        assert chat(url, key).status_code == 401
        operator.post(f"/console/keys/{key_id}/enable")
        assert chat(url, key).status_code == 200
        assert operator.post(f"/console/keys/{key_id}/revoke").status_code == 303
        refused = chat(url, key)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        assert "deleted" in operator.get(f"/console/keys/{key_id}").text
        assert key_id not in operator.get("/console/keys").text
        assert key_id in operator.get("/console/keys?deleted=1").text
        search = operator.get("/console/keys?q=TEAM%20A2&deleted=1").text
        assert key_id in search and "No keys" not in search
        assert operator.post("/console/keys/0123456789abcdef/rotate").status_code == 404
        operator.close()


def test_request_log_filters_paging_and_csv(upstream, db):
    config = console_config(upstream[1], db)
    config["plugins"]["console"]["page_size"] = 10
    with serve_console(config) as (_, url):
        operator = Visitor(url)
        operator.sign_in(ADMIN_KEY)
        a_id, a = operator.create_key(name="a")
        b_id, b = operator.create_key(name="b")
        for i in range(12):
            chat(url, a if i % 2 else b, "gpt-4o-mini" if i % 3 == 0 else "gpt-4o", f"number {i}")
        chat(url, a, "broken-model")
        _wait_rows(operator, 1, "/console/api/log?status=error")  # the last request: all are written
        rows = _wait_rows(operator, 10)
        first = operator.get("/console/api/log").json()
        assert len(first["data"]) == 10 and first["next_cursor"]
        second = operator.get(f"/console/api/log?before={first['next_cursor']}").json()
        ids = [r["id"] for r in first["data"] + second["data"]]
        assert len(ids) == 13 == len(set(ids)) and second["next_cursor"] is None
        row = rows[0]
        assert row["model"] == "broken-model" and row["status"] == "error" and row["status_code"] == 500
        assert "prompt" not in row
        ok = next(r for r in rows if r["status"] == "ok")
        assert ok["finish_reason"] == "stop" and ok["provider"] == "up" and ok["latency_ms"] >= 0
        assert ok["prompt_tokens"] + ok["completion_tokens"] > 0 and ok["charged_micro"] > 0
        assert {r["key_id"] for r in operator.get(f"/console/api/log?key={a_id}").json()["data"]} == {a_id}
        minis = operator.get("/console/api/log?model=gpt-4o-mini").json()["data"]
        assert len(minis) == 4 and {r["model"] for r in minis} == {"gpt-4o-mini"}
        assert len(operator.get("/console/api/log?status=error").json()["data"]) == 1
        assert operator.get("/console/api/log?since=2099-01-01").json()["data"] == []
        assert len(operator.get("/console/api/log?since=1h&until=2099-01-01").json()["data"]) == 10
        assert operator.get("/console/api/log?status=weird").status_code == 400
        page = operator.get("/console/log?status=nope")
        assert page.status_code == 400 and "status must be one of" in text_of(page)
        html_page = text_of(operator.get(f"/console/log?key={b_id}"))
        assert html_page.count("<code>" + b_id + "</code>") == 6 and a_id not in html_page.split("<tbody>")[1]
        exported = operator.get("/console/log.csv")
        assert exported.headers["content-type"].startswith("text/csv")
        assert "attachment" in exported.headers["content-disposition"]
        table = list(csv.DictReader(io.StringIO(exported.text)))
        assert len(table) == 13 and table[0]["model"] == "broken-model" and table[0]["status_code"] == "500"
        assert {"time", "request_id", "key_id", "cost", "latency_ms", "ttft_ms", "finish_reason"} <= set(table[0])
        assert len(list(csv.DictReader(io.StringIO(operator.get(f"/console/log.csv?key={a_id}").text)))) == 7
        operator.close()


def test_prompts_are_shown_only_with_log_prompts(upstream, sqlite_db):
    for log_prompts in (False, True):
        config = console_config(upstream[1], sqlite_db, log_prompts=log_prompts)
        with serve_console(config) as (_, url):
            operator = Visitor(url)
            operator.sign_in(ADMIN_KEY)
            _, key = operator.create_key(name=f"prompts {log_prompts}")
            chat(url, key, content=f"the secret recipe {log_prompts}")
            rows = [r for r in _wait_rows(operator, 1 + log_prompts) if r["model"] == "gpt-4o"]
            page = text_of(operator.get("/console/log"))
            if log_prompts:
                assert "the secret recipe True" in rows[0]["prompt"] and "the secret recipe True" in page
                assert "the secret recipe False" not in page
            else:
                assert "prompt" not in rows[0] and "the secret recipe" not in page
                assert "log_prompts</code> is off" in page
            operator.close()


def test_request_examples_run_against_the_gateway(upstream, sqlite_db):
    with serve_console(console_config(upstream[1], sqlite_db)) as (_, url):
        operator = Visitor(url)
        operator.sign_in(ADMIN_KEY)
        key_id, key = operator.create_key(name="examples", allowed_models="gpt-4o-mini")
        page = operator.get(f"/console/keys/{key_id}").text
        code = {m.group(1): html.unescape(m.group(2)) for m in
                re.finditer(r'<code id="example-(\w+)" data-language="\w+">(.*?)</code>', page, re.S)}
        assert set(code) == {"curl", "python", "node", "go", "java"}
        for text in code.values():
            assert f"{url}/v1" in text and "gpt-4o-mini" in text and key not in text
        assert "COMPATGATE_API_KEY" in code["curl"]
        env = {**os.environ, "COMPATGATE_API_KEY": key}
        curl = subprocess.run(["bash", "-c", code["curl"]], capture_output=True, text=True, env=env, timeout=30)
        assert curl.returncode == 0, curl.stderr
        assert '"Hello there, nice to meet."' in curl.stdout and '"object":"chat.completion"' in curl.stdout.replace(" ", "")
        python = subprocess.run([sys.executable, "-c", code["python"]], capture_output=True, text=True, env=env,
                                timeout=60)
        assert python.returncode == 0, python.stderr
        assert python.stdout.strip() == "Hello there, nice to meet."
        assert [r["model"] for r in _wait_rows(operator, 2)] == ["gpt-4o-mini", "gpt-4o-mini"]
        holder = Visitor(url)
        holder.sign_in(key)
        mine = holder.get("/console/me").text
        assert 'id="example-python"' in mine and key not in mine
        for visitor in (operator, holder):
            visitor.close()


def test_provider_health_shows_cooldowns_and_upstream_errors(upstream, sqlite_db):
    config = console_config(upstream[1], sqlite_db)
    config["providers"]["down"] = {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "x",
                                   "connect_timeout": 1.0}
    config["plugins"]["router"] = {
        "strategy": "ordered", "retry": {"max_attempts": 2, "backoff_base": 0.01, "backoff_max": 0.02},
        "cooldown": {"failures": 1, "window": 30, "seconds": 60},
        "groups": {"routed": {"deployments": [{"provider": "down", "upstream_model": "m1"},
                                              {"provider": "up", "upstream_model": "gpt-4o"}]}},
    }
    with serve_console(config) as (_, url):
        operator = Visitor(url)
        operator.sign_in(ADMIN_KEY)
        _, key = operator.create_key(name="health")
        assert chat(url, key, "routed").status_code == 200  # the first deployment failed: cooling down
        assert chat(url, key, "broken-model").status_code == 500
        _wait_rows(operator, 2)
        page = text_of(operator.get("/console/providers"))
        assert "down/m1" in page and "open" in page and "up/gpt-4o" in page and "closed" in page
        assert "The server had an error." in page and "<code>http://127.0.0.1:9</code>" in page
        models = text_of(operator.get("/console/models"))
        assert "routed" in models and "down/m1 (weight 1)" in models and "gpt-4o*" in models
        operator.close()


def test_the_console_in_a_host_app(upstream, sqlite_db):
    gateway = Gateway(console_config(upstream[1], sqlite_db))
    host = Starlette(routes=[Mount("/v1", gateway), Mount("/admin/console", console_app(gateway))])
    with serve(host) as url:
        visitor = Visitor(url)
        visitor.get("/admin/console/signin")
        response = visitor.http.post("/admin/console/signin", data={"csrf": visitor.csrf, "key": ADMIN_KEY})
        assert response.status_code == 303 and response.headers["location"] == "/admin/console/overview"
        assert "Path=/admin/console/" in response.headers["set-cookie"]
        page = visitor.get("/admin/console/overview").text
        assert 'href="/admin/console/keys"' in page and 'src="/admin/console/static/console.js"' in page
        assert visitor.get("/admin/console/static/vendor/uPlot.iife.min.js").status_code == 200
        visitor.get("/admin/console/keys/new")
        created = visitor.post("/admin/console/keys", {"name": "hosted"})
        secret = re.search(r'value="(sk-cg-[^"]+)"', created.text).group(1)
        assert chat(url, secret).status_code == 200
        visitor.close()
