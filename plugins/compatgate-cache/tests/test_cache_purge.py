"""Purging by key, team, model or everything: the admin API (memory and Redis) and the CLI
(Redis directly, the memory backend through a running gateway's admin API)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx2
import orjson
from cache_support import ADMIN_KEY, KEYS, Teams, cache_status, compatgate_cli, config, toml

BASE: dict[str, Any] = {"messages": [{"role": "user", "content": "Say hello."}], "temperature": 0}


def purge(gw, body: dict[str, Any], key: str = ADMIN_KEY) -> httpx2.Response:
    return httpx2.post(f"{gw.url}/admin/cache/purge", json=body,
                       headers={"authorization": f"Bearer {key}"}, timeout=10)  # fmt: skip


def fill(gw) -> None:
    """Four entries: two keys × two models."""
    for key in KEYS:
        for model in ("gpt-4o", "gpt-4o-mini"):
            assert cache_status(gw.chat({**BASE, "model": model}, key=key)) == "miss"


def statuses(gw) -> list[str | None]:
    return [cache_status(gw.chat({**BASE, "model": m}, key=k)) for k in KEYS for m in ("gpt-4o", "gpt-4o-mini")]


def test_the_admin_api_purges_by_key_model_and_everything(make_gateway, backend):
    gw = make_gateway({"admin_key": ADMIN_KEY})
    fill(gw)
    answer = purge(gw, {"model": "gpt-4o", "key": "static:0"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"object": "cache.purge", "deleted": 1, "namespace": "k:static:0", "model": "gpt-4o",
                             "backend": backend["backend"], "shared": backend["backend"] == "redis"}  # fmt: skip
    assert statuses(gw) == ["miss", "hit", "hit", "hit"]
    assert purge(gw, {"model": "gpt-4o-mini"}).json()["deleted"] == 2
    assert statuses(gw) == ["hit", "miss", "hit", "miss"]
    assert purge(gw, {"key": "static:1"}).json()["deleted"] == 2
    assert statuses(gw) == ["hit", "hit", "miss", "miss"]
    assert purge(gw, {"all": True}).json()["deleted"] == 4
    assert statuses(gw) == ["miss"] * 4


def test_the_admin_api_purges_a_team(make_gateway):
    gw = make_gateway({"admin_key": ADMIN_KEY, "scope": "team"}, plugins=(Teams(),))
    gw.chat(BASE, key="sk-team-red-1")
    gw.chat(BASE, key="sk-team-blue-1")
    assert purge(gw, {"team": "red"}).json()["deleted"] == 1
    assert cache_status(gw.chat(BASE, key="sk-team-red-2")) == "miss"
    assert cache_status(gw.chat(BASE, key="sk-team-blue-2")) == "hit"


def test_the_admin_api_refuses_without_the_key_and_bad_bodies(make_gateway):
    gw = make_gateway({"admin_key": ADMIN_KEY})
    refused = purge(gw, {"all": True}, key="wrong-key-0123456789")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_admin_key"
    assert ADMIN_KEY not in refused.text
    for body, status in (({}, 400), ({"all": True, "model": "x"}, 400), ({"key": 3}, 400),
                         ({"colour": "red"}, 400), ([], 400)):  # fmt: skip
        answer = purge(gw, body)
        assert answer.status_code == status and answer.json()["error"]["type"] == "invalid_request_error"
    wrong = httpx2.get(f"{gw.url}/admin/cache/purge", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert wrong.status_code == 405 and "error" in wrong.json()
    broken = httpx2.post(f"{gw.url}/admin/cache/purge", content=b"{", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert broken.status_code == 400


def test_billing_s_admin_key_opens_the_route_and_none_hides_it(make_gateway, tmp_path):
    billing = {"database": f"sqlite:///{tmp_path / 'billing.db'}", "secret": "s" * 32, "admin_key": "billing-admin-key-0123"}
    gw = make_gateway({}, billing=billing)
    assert purge(gw, {"all": True}, key="billing-admin-key-0123").status_code == 200
    plain = make_gateway({})
    assert purge(plain, {"all": True}).status_code == 404


def test_the_cli_purges_redis(upstream, redis_url, key_prefix, tmp_path):
    from cache_support import Served

    from compatgate.testing import serve_gateway

    table = config(upstream[1], {"backend": "redis", "redis_url": redis_url, "key_prefix": key_prefix})
    path = tmp_path / "compatgate.toml"
    path.write_text(toml(table))
    with serve_gateway(str(path), served=Served) as gw:
        fill(gw)
        done = run(path, "--model", "gpt-4o", "--json")
        assert done.returncode == 0, done.stderr
        assert orjson.loads(done.stdout)["deleted"] == 2
        assert statuses(gw) == ["miss", "hit", "miss", "hit"]
        done = run(path, "--all")
        assert done.returncode == 0 and "deleted 4 cached answers (redis)" in done.stdout


def test_the_cli_purges_a_memory_cache_through_the_admin_api(upstream, tmp_path):
    from cache_support import Served

    from compatgate.testing import serve_gateway

    table = config(upstream[1], {"backend": "memory", "admin_key": ADMIN_KEY})
    path = tmp_path / "compatgate.toml"
    path.write_text(toml(table))
    with serve_gateway(str(path), served=Served) as gw:
        fill(gw)
        alone = run(path, "--key", "static:0")
        assert alone.returncode == 2 and "--url" in alone.stderr
        done = run(path, "--key", "static:0", "--url", gw.url)
        assert done.returncode == 0, done.stderr
        assert "deleted 2 cached answers (memory)" in done.stdout
        assert statuses(gw) == ["miss", "miss", "hit", "hit"]
    assert run(path, "--all", "--key", "x").returncode == 2  # argparse: one of them


def run(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([compatgate_cli(), "cache", "purge", "--config", str(path), *args],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
