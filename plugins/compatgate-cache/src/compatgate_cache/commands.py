"""The CLI: ``compatgate cache purge --config PATH (--key ID | --team NAME | --model NAME | --all) [--url URL]``.

With the Redis backend the command deletes the entries in Redis itself (every replica sees it).
The memory backend lives inside each gateway process, so the command asks a running gateway
through its admin API instead: ``--url`` is the gateway's base URL (where it is mounted, e.g.
``http://127.0.0.1:8000/v1``) and the admin key comes from the configuration; only the process
that answers is purged. ``--url`` works with Redis too. Exit status 0, 1 when the purge failed,
2 for a configuration or usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from compatgate import ConfigError, load_config

from .admin import PURGE_PATH
from .backend import BackendUnavailable
from .plugin import STATE_KEY, _billing_admin_key_of
from .purge import PurgeError, Target, parse_target
from .redis_backend import RedisBackend
from .settings import Settings, parse_settings

__all__ = ["add_commands"]


def add_commands(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    cache = add_command("cache", help="manage the response cache").add_subparsers(dest="cache_command", required=True)
    purge = cache.add_parser("purge", help="delete cached answers of a key, team or model, or all of them")
    purge.add_argument(
        "--config", default=os.environ.get("COMPATGATE_CONFIG", "compatgate.toml"),
        help="TOML configuration with a [plugins.cache] table (default: $COMPATGATE_CONFIG or ./compatgate.toml)",
    )  # fmt: skip
    what = purge.add_mutually_exclusive_group()
    what.add_argument("--key", help="the entries of this API key id (its namespace)")
    what.add_argument("--team", help="the entries of this team (scope = \"team\")")
    what.add_argument("--all", action="store_true", help="every entry")
    purge.add_argument("--model", help="only this model's entries (alone: every namespace's)")
    purge.add_argument("--url", help="a running gateway's base URL: purge through its admin API")
    purge.add_argument("--json", action="store_true", help="print JSON")
    purge.set_defaults(run=run_purge)


def run_purge(args: argparse.Namespace) -> int:
    given: dict[str, Any] = {"key": args.key, "team": args.team, "model": args.model, "all": args.all or None}
    try:
        target = parse_target({k: v for k, v in given.items() if v is not None})
        config = load_config(args.config)
        table = config.plugins.get(STATE_KEY)
        if table is None:
            raise ConfigError(f"{config.source}: no [plugins.{STATE_KEY}] table")
        settings = parse_settings(table, config.source)
    except (ConfigError, PurgeError) as exc:
        print(f"compatgate cache purge: {exc}", file=sys.stderr)
        return 2
    if args.url:
        admin_key = settings.admin_key or _billing_admin_key_of(config.plugins)
        if admin_key is None:
            print("compatgate cache purge: --url needs an admin key (plugins.cache.admin_key "
                  "or plugins.billing.admin_key)", file=sys.stderr)  # fmt: skip
            return 2
        return _report(args, _through_api(args.url, admin_key, target))
    if settings.backend != "redis":
        print("compatgate cache purge: the memory backend lives inside each gateway process; "
              "pass --url http://HOST:PORT/v1 to purge a running gateway through its admin API",
              file=sys.stderr)  # fmt: skip
        return 2
    return _report(args, asyncio.run(_in_redis(settings, target)))


def _report(args: argparse.Namespace, answer: dict[str, Any]) -> int:
    if "error" in answer:
        print(f"compatgate cache purge: {answer['error']}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer))
    else:
        print(f"deleted {answer['deleted']} cached answers ({answer['backend']})")
    return 0


async def _in_redis(settings: Settings, target: Target) -> dict[str, Any]:
    assert settings.redis_url is not None
    backend = RedisBackend(settings.redis_url, key_prefix=settings.key_prefix,
                           timeout=max(settings.redis_timeout, 5.0), max_connections=2)  # fmt: skip
    try:
        await backend.start()
        deleted = await backend.purge(target.namespace, target.model)
    except BackendUnavailable as exc:
        return {"error": f"Redis is unavailable: {exc}"}
    finally:
        await backend.close()
    return {"object": "cache.purge", "deleted": deleted, **target.to_json(), "backend": "redis", "shared": True}


def _through_api(url: str, admin_key: str, target: Target) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if target.namespace is None and target.model is None:
        body["all"] = True
    elif target.namespace is not None:
        kind, _, name = target.namespace.partition(":")
        body["key" if kind == "k" else "team"] = name
    if target.model is not None:
        body["model"] = target.model
    request = urllib.request.Request(
        url.rstrip("/") + PURGE_PATH, data=json.dumps(body).encode(), method="POST",
        headers={"authorization": f"Bearer {admin_key}", "content-type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        return {"error": f"the gateway answered {exc.code}: {message}"}
    except (urllib.error.URLError, OSError) as exc:
        return {"error": f"cannot reach {url}: {exc}"}
