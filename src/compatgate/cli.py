"""The ``compatgate`` command.

``compatgate serve [--config PATH] [--host 127.0.0.1] [--port 8000] [--workers N] [--demo]``
serves a `Gateway` under ``/v1``; ``--demo`` needs no configuration and no network.
``compatgate check [--config PATH]`` loads a configuration and its plugins and reports problems.
Installed plugins add their own commands through the `register_commands` hook.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from .local import not_found
from .exceptions import ConfigError
from .gateway import Gateway
from .hooks import create_plugin_manager

__all__ = ["Standalone", "create_app", "main"]

_CONFIG_ENV = "COMPATGATE_CONFIG"
_DEMO = "demo"
_HEALTH = b'{"status":"ok"}'


class Standalone:
    """The app ``compatgate serve`` runs: the gateway under ``/v1``, ``GET /health``, and the
    apps plugins mount through the `register_apps` hook (e.g. ``/console``).

    It is what ``Starlette(routes=[Mount("/v1", gateway), ...])`` would be, without a
    framework's middleware stack in front of every request (measurably cheaper).
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.apps: dict[str, ASGIApp] = {}
        gateway.pm.hook.register_apps(gateway=gateway, register=self._register)

    def _register(self, prefix: str, app: ASGIApp) -> None:
        if not prefix.startswith("/") or prefix.endswith("/") or prefix in ("/v1", "/health") \
                or prefix in self.apps:
            raise ConfigError(f"register_apps: {prefix!r} is not a free absolute path prefix")
        self.apps[prefix] = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.gateway(scope, receive, send)
            return
        path = scope["path"]
        if path == "/v1" or path.startswith("/v1/"):
            await self.gateway({**scope, "root_path": scope.get("root_path", "") + "/v1"}, receive, send)
        elif path == "/health" and scope["type"] == "http":
            headers = [(b"content-type", b"application/json"), (b"content-length", b"15")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": _HEALTH})
        else:
            for prefix, app in self.apps.items():
                if path == prefix or path.startswith(prefix + "/"):
                    await app({**scope, "root_path": scope.get("root_path", "") + prefix}, receive, send)
                    return
            await not_found(scope, receive, send)


def create_app(config: Any) -> Standalone:
    """The standalone app for ``config``."""
    return Standalone(Gateway(config))


def worker_app() -> Standalone:
    """The app factory each worker process of ``--workers N`` imports."""
    source = os.environ[_CONFIG_ENV]
    return create_app(_demo_config() if source == _DEMO else source)


def _demo_config() -> dict[str, Any]:
    from .defaults.demo import demo_config

    return demo_config()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compatgate", description="An OpenAI-compatible LLM gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the gateway under /v1")
    serve.add_argument("--config", default=None, help="TOML configuration (default: ./compatgate.toml)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--demo", action="store_true", help="offline demo provider, no config needed")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    check = commands.add_parser("check", help="load a configuration and its plugins, report problems")
    check.add_argument("--config", default="compatgate.toml")
    plugins = create_plugin_manager((), load_entrypoints=True, instantiate=lambda cls: cls)
    plugins.hook.register_commands(add_command=commands.add_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        if hasattr(args, "run"):  # a plugin's command
            raise SystemExit(args.run(args) or 0)
        if args.command == "check":
            gateway = Gateway(args.config)
            print(f"ok: {len(gateway.providers)} providers, {len(gateway.models)} models, "
                  f"provider types: {', '.join(sorted(gateway.provider_types))}")
            return
        _serve(args)
    except ConfigError as exc:
        print(f"compatgate: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    if args.demo:
        source: str = _DEMO
        print(
            f"compatgate demo: http://{args.host}:{args.port}/v1 — API key 'sk-demo', "
            "models 'demo-chat' and 'demo-embedding' (offline, no provider key needed)",
            file=sys.stderr,
        )
    else:
        source = args.config or "compatgate.toml"
        if args.config is None and not os.path.exists(source):
            raise ConfigError("no ./compatgate.toml here: pass --config PATH, or --demo to try it offline")
        source = os.path.abspath(source)
    app = create_app(_demo_config() if source == _DEMO else source)  # config errors surface here
    options: dict[str, Any] = {"host": args.host, "port": args.port, "log_level": args.log_level}
    if args.workers > 1:
        os.environ[_CONFIG_ENV] = source
        uvicorn.run("compatgate.cli:worker_app", factory=True, workers=args.workers, **options)
    else:
        uvicorn.run(app, **options)
