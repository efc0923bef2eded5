"""Who may see what: operators and key holders, on every page and data endpoint; sessions,
cookies, CSRF, sign-in throttling, the Content-Security-Policy, and keys never leaking into
URLs, pages or logs. On SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import re
import time

import pytest
from console_support import ADMIN_KEY, Visitor, chat, console_config, serve_console, text_of
from starlette.routing import Mount, Route

from compatgate import ConfigError, Gateway
from compatgate.cli import Standalone
from compatgate_console.app import routes

HOLDER_ROUTES = {"home", "signin", "signin_post", "signout", "me", "my_usage_data", "my_log", "my_log_csv",
                 "my_log_data", "static"}
SAMPLE_PARAMS = {"key_id": "0123456789abcdef", "action": "disable"}


def _path(route: Route) -> str:
    return "/console" + re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMS[m.group(1)], route.path)


def test_every_route_declares_who_may_use_it():
    for route in routes():
        if isinstance(route, Mount):
            assert route.name == "static"
            continue
        role = getattr(route.endpoint, "role", None)
        assert role in ("public", "any", "operator"), route.path
        assert (role != "operator") == (route.name in HOLDER_ROUTES), route.name


def test_the_console_needs_billing(upstream, sqlite_db):
    config = console_config(upstream[1], sqlite_db)
    del config["plugins"]["billing"]
    with pytest.raises(ConfigError, match=r"plugins.console needs the billing plugin"):
        Gateway(config)
    config = console_config(upstream[1], sqlite_db)
    config["plugins"]["console"]["session_hours"] = 0
    with pytest.raises(ConfigError, match=r"plugins.console.session_hours"):
        Gateway(config)


def test_without_a_console_table_nothing_is_mounted(upstream, sqlite_db):
    config = console_config(upstream[1], sqlite_db)
    del config["plugins"]["console"]
    gateway = Gateway(config)
    assert Standalone(gateway).apps == {}


def test_a_key_holder_sees_only_their_own_key(upstream, db):
    with serve_console(console_config(upstream[1], db)) as (_, url):
        operator = Visitor(url)
        assert operator.sign_in(ADMIN_KEY).status_code == 303
        mine_id, mine = operator.create_key(name="mine", budget="5", allowed_models="gpt-4o")
        other_id, other = operator.create_key(name="someone-else")
        for key, model in ((mine, "gpt-4o"), (other, "gpt-4o-mini"), (other, "broken-model")):
            assert chat(url, key, model).status_code in (200, 500)
        holder = Visitor(url)
        response = holder.sign_in(mine)
        assert response.status_code == 303 and response.headers["location"].endswith("/console/me")
        deadline = time.monotonic() + 20
        while len(holder.get("/console/api/me/log").json()["data"]) < 1:
            assert time.monotonic() < deadline, "the ledger row did not arrive"
            time.sleep(0.1)
        # operator pages and data: refused, whatever the parameters
        for route in routes():
            if isinstance(route, Mount) or route.name in HOLDER_ROUTES:
                continue
            path = _path(route)
            for method in route.methods or ():
                if method == "HEAD":
                    continue
                response = holder.get(path) if method == "GET" else holder.post(path)
                assert response.status_code == 403, (method, path, response.status_code)
                assert other_id not in response.text and "someone-else" not in response.text
        # the holder's own pages and data: their key only, even when they ask for another
        for path in ("/console/me", "/console/me?range=hour", "/console/me/log", f"/console/me/log?key={other_id}",
                     "/console/api/me/log", f"/console/api/me/log?key={other_id}", "/console/api/me/usage",
                     "/console/api/me/usage?by=model&range=day", "/console/me/log.csv",
                     f"/console/me/log.csv?key={other_id}"):
            response = holder.get(path)
            assert response.status_code == 200, path
            assert other_id not in response.text and "someone-else" not in response.text, path
            assert "gpt-4o-mini" not in response.text and "broken-model" not in response.text, path
        rows = holder.get(f"/console/api/me/log?key={other_id}").json()["data"]
        assert rows and {row["key_id"] for row in rows} == {mine_id}
        usage = holder.get("/console/api/me/usage?range=hour").json()
        assert usage["total"]["requests"] == 1
        csv_lines = holder.get("/console/me/log.csv").text.strip().splitlines()
        assert len(csv_lines) == 2 and mine_id in csv_lines[1]
        page = text_of(holder.get("/console/me"))
        assert mine_id in page and mine not in page
        # the operator sees both
        everything = operator.get("/console/api/log").json()["data"]
        assert {row["key_id"] for row in everything} >= {mine_id, other_id} or len(everything) < 3
        for visitor in (operator, holder):
            visitor.close()


def test_sessions_cookies_and_their_end(upstream, sqlite_db):
    with serve_console(console_config(upstream[1], sqlite_db)) as (_, url):
        anonymous = Visitor(url)
        assert anonymous.get("/console/overview").headers["location"].endswith("/console/signin")
        assert anonymous.get("/console/api/usage").status_code == 401
        assert anonymous.get("/console/log.csv").status_code == 401
        operator = Visitor(url)
        response = operator.sign_in(ADMIN_KEY)
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console/" in cookie
        assert "Max-Age=28800" in cookie and "Secure" not in cookie and ADMIN_KEY not in cookie
        key_id, key = operator.create_key(name="rotating")
        holder = Visitor(url)
        assert holder.sign_in(key).status_code == 303
        assert holder.get("/console/me").status_code == 200
        operator.get(f"/console/keys/{key_id}")
        assert operator.post(f"/console/keys/{key_id}/rotate").status_code == 200
        assert holder.get("/console/me").status_code == 303  # rotation ended the session
        bad = Visitor(url)
        assert bad.sign_in("sk-cg-0123456789abcdef-" + "x" * 43).status_code == 401
        assert bad.sign_in(key).status_code == 401  # the old secret
        # signing out ends the session in the browser
        operator.get("/console/overview")
        out = operator.post("/console/signout")
        assert out.status_code == 303 and 'cg_console=""' in out.headers["set-cookie"]
        # over HTTPS (a TLS proxy in front: X-Forwarded-Proto from loopback), the cookie is Secure
        secure = Visitor(url)
        secure.http.headers["x-forwarded-proto"] = "https"
        assert "Secure" in secure.sign_in(ADMIN_KEY).headers["set-cookie"]
        for visitor in (anonymous, operator, holder, bad, secure):
            visitor.close()


def test_state_changes_need_the_csrf_token_and_same_origin(upstream, sqlite_db):
    with serve_console(console_config(upstream[1], sqlite_db)) as (_, url):
        operator = Visitor(url)
        operator.sign_in(ADMIN_KEY)
        key_id, _ = operator.create_key(name="victim")
        no_token = operator.http.post(f"/console/keys/{key_id}/disable", data={})
        wrong = operator.http.post(f"/console/keys/{key_id}/disable", data={"csrf": "forged"})
        elsewhere = operator.post(f"/console/keys/{key_id}/disable", headers={"origin": "https://evil.example"})
        assert (no_token.status_code, wrong.status_code, elsewhere.status_code) == (403, 403, 403)
        assert "active" in operator.get(f"/console/keys/{key_id}").text
        assert operator.post(f"/console/keys/{key_id}/disable", headers={"origin": url}).status_code == 303
        assert "disabled" in operator.get(f"/console/keys/{key_id}").text
        fresh = Visitor(url)  # the sign-in form has its own token
        assert fresh.http.post("/console/signin", data={"key": ADMIN_KEY}).status_code == 403
        for visitor in (operator, fresh):
            visitor.close()


def test_sign_in_attempts_are_rate_limited(upstream, sqlite_db):
    config = console_config(upstream[1], sqlite_db)
    config["plugins"]["console"]["signin_attempts_per_minute"] = 3
    with serve_console(config) as (_, url):
        visitor = Visitor(url)
        statuses = [visitor.sign_in("wrong-key-" + str(i)).status_code for i in range(3)]
        refused = visitor.sign_in(ADMIN_KEY)
        assert statuses == [401, 401, 401] and refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= 60 and "cg_console=" not in refused.headers.get("set-cookie", "")
        visitor.close()


def test_csp_headers_and_no_inline_code_on_any_page(upstream, sqlite_db):
    with serve_console(console_config(upstream[1], sqlite_db)) as (_, url):
        operator = Visitor(url)
        operator.sign_in(ADMIN_KEY)
        key_id, key = operator.create_key(name="csp", budget="1")
        chat(url, key)
        anonymous = Visitor(url)
        assert anonymous.get("/console/signin").headers["content-security-policy"].startswith("default-src 'none'")
        anonymous.close()
        pages = ["/console/overview", "/console/overview?by=key&range=month", "/console/keys",
                 "/console/keys/new", f"/console/keys/{key_id}", "/console/log", "/console/models",
                 "/console/providers", "/console/static/console.js"]
        for path in pages:
            response = operator.get(path)
            assert response.status_code == 200, path
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
            assert response.headers["x-frame-options"] == "DENY"
            if path.endswith(".js"):
                continue
            assert response.headers["cache-control"] == "no-store"
            assert not re.search(r"<script(?![^>]*\bsrc=)", response.text), path
            assert not re.search(r"\sstyle=|\son[a-z]+=|javascript:", response.text), path
            assert not re.search(r"(src|href)=\"(https?:)?//", response.text), path  # nothing from elsewhere
        operator.close()


def test_keys_never_appear_in_urls_pages_or_logs(upstream, sqlite_db, caplog):
    caplog.set_level(logging.DEBUG)
    with serve_console(console_config(upstream[1], sqlite_db)) as (_, url):
        operator = Visitor(url)
        operator.sign_in(ADMIN_KEY)
        operator.get("/console/keys/new")
        shown = operator.post("/console/keys", {"name": "leak-check", "budget": "2"})
        secret = re.search(r'value="(sk-cg-[^"]+)"', shown.text).group(1)
        assert shown.headers["cache-control"] == "no-store"
        key_id = secret.split("-")[2]
        chat(url, secret)
        holder = Visitor(url)
        holder.sign_in(secret)
        seen = []
        for visitor, paths in ((operator, ["/console/overview", "/console/keys", f"/console/keys/{key_id}",
                                           "/console/log", "/console/api/log", "/console/log.csv",
                                           "/console/providers", "/console/models"]),
                               (holder, ["/console/me", "/console/me/log", "/console/api/me/log",
                                         "/console/me/log.csv"])):
            for path in paths:
                response = visitor.get(path)
                seen.append(response.text)
                assert secret not in str(response.url)
                for header in response.headers.values():
                    assert secret not in header and ADMIN_KEY not in header
        text = "\n".join(seen)
        assert secret not in text and secret.split("-")[3] not in text and ADMIN_KEY not in text
        logged = caplog.text
        assert secret not in logged and secret.split("-")[3] not in logged and ADMIN_KEY not in logged
        for visitor in (operator, holder):
            visitor.close()
