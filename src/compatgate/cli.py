"""The ``compatgate`` command.

``compatgate serve [--config PATH | --demo] [--host H] [--port P] [--workers N] [--log-level L]
[--plugin module:Class]... [--shutdown-grace-seconds S]`` serves a `Gateway` under ``/v1``
(``--demo`` needs no configuration and no network), with ``/health/live`` and
``/health/ready`` at the top level. ``compatgate check [--config PATH | --demo]
[--plugin module:Class]... [--probe] [--strict]`` loads a configuration and its plugins and
reports problems (see `compatgate.check`). Installed plugins add their own commands through
the `register_commands` hook.

On SIGTERM (or Ctrl-C) ``serve`` stops accepting connections, lets the requests in flight
(streams included) finish for up to the grace period, then runs the gateway's shutdown (the
plugins flush what they hold, e.g. the billing ledger) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import os
import sys
from collections.abc import Sequence
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import LOG_LEVELS, Config, load_config
from .exceptions import ConfigError, NotFoundError
from .gateway import Gateway
from .health import HealthEndpoint
from .plugins import create_plugin_manager, import_plugin
from .local import error_response, not_found, request_id
from .operations import OPENAI_OPERATIONS

__all__ = ["Standalone", "build_parser", "create_app", "main"]

logger = logging.getLogger("compatgate")

_CONFIG_ENV = "COMPATGATE_CONFIG"
_PLUGINS_ENV = "COMPATGATE_PLUGINS"
_DEMO = "demo"
_NO_CONFIG = "no ./compatgate.toml here: pass --config PATH, or --demo to try it offline"
# The first path segments of the API, to tell a client whose base_url lacks the mount.
_API_FAMILIES = frozenset({op.path.strip("/").split("/", 1)[0] for op in OPENAI_OPERATIONS}
                          | {"models", "responses", "messages", "v1beta"})


class Standalone:
    """The app ``compatgate serve`` runs: the gateway under ``/v1``, ``GET /health/live`` (also
    ``/health``) and ``GET /health/ready`` at the top level, and the apps plugins mount through
    the `register_apps` hook (e.g. ``/console``).

    It is what ``Starlette(routes=[Mount("/v1", gateway), ...])`` would be, without a
    framework's middleware stack in front of every request (measurably cheaper). It counts the
    requests in flight: at shutdown the server cancels those still running after the grace
    period and goes on at once, so the gateway's shutdown (which flushes what plugins hold)
    first waits up to ``drain_seconds`` for them to finish their cancellation (each records
    its usage as it ends).
    """

    drain_seconds = 10.0

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.apps: dict[str, ASGIApp] = {}
        gateway.pm.hook.register_apps(gateway=gateway, register=self._register)
        live = HealthEndpoint(gateway, ready=False)
        self._health = {"/health": live, "/health/live": live, "/health/ready": HealthEndpoint(gateway, ready=True)}
        self._active = 0
        self._idle: asyncio.Event | None = None

    def _register(self, prefix: str, app: ASGIApp) -> None:
        if not prefix.startswith("/") or prefix.endswith("/") or prefix in ("/v1", "/health") \
                or prefix in self.apps:
            raise ConfigError(f"register_apps: {prefix!r} is not a free absolute path prefix")
        self.apps[prefix] = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.gateway(scope, self._drain_before_shutdown(receive), send)
            return
        path = scope["path"]
        if path == "/v1" or path.startswith("/v1/"):
            self._active += 1
            try:
                await self.gateway({**scope, "root_path": scope.get("root_path", "") + "/v1"}, receive, send)
            except asyncio.CancelledError:  # only the server's shutdown cancels a request's task
                logger.warning("a request was cut at shutdown: the grace period (shutdown_grace_seconds) was over")
            finally:
                self._active -= 1
                if not self._active and self._idle is not None:
                    self._idle.set()
        elif scope["type"] == "http" and path in self._health:
            await self._health[path](scope, receive, send)  # without starting the gateway
        elif scope["type"] == "http" and path.strip("/").split("/", 1)[0] in _API_FAMILIES:
            await _outside_mount(scope, receive, send)
        else:
            for prefix, app in self.apps.items():
                if path == prefix or path.startswith(prefix + "/"):
                    await app({**scope, "root_path": scope.get("root_path", "") + prefix}, receive, send)
                    return
            await not_found(scope, receive, send)


    def _drain_before_shutdown(self, receive: Receive) -> Receive:
        async def receive_drained() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown" and self._active:
                self._idle = asyncio.Event()
                try:
                    await asyncio.wait_for(self._idle.wait(), self.drain_seconds)
                except TimeoutError:
                    logger.warning("%d requests still running at shutdown", self._active)
            return message

        return receive_drained


async def _outside_mount(scope: Scope, receive: Receive, send: Send) -> None:
    """404 for an API path without ``/v1``: say where the API is (a client's base_url that
    lacks ``/v1`` is the usual cause)."""
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin-1") or "HOST:PORT"
    base = f"{scope.get('scheme', 'http')}://{host}/v1"
    error = NotFoundError(
        f"Invalid URL ({scope['method']} {scope['path']}): the API is served under /v1; "
        f"set the client's base_url to {base} (this request would go to {base}{scope['path']}).",
        code="unknown_url",
    )
    from starlette.requests import Request

    rid = request_id(Request(scope, receive))
    await error_response(error, [(b"x-request-id", rid.encode())])(scope, receive, send)


def create_app(config: Any, plugins: Sequence[object] = ()) -> Standalone:
    """The standalone app for ``config`` (a path, a dict or a `Config`) and ``plugins``."""
    return Standalone(Gateway(config, plugins=plugins))


def worker_app() -> Standalone:
    """The app factory each worker process of ``--workers N`` imports."""
    source = os.environ[_CONFIG_ENV]
    specs = orjson.loads(os.environ.get(_PLUGINS_ENV, "[]"))
    plugins = [import_plugin(spec) for spec in specs]
    return create_app(_demo_config() if source == _DEMO else source, plugins)


def _demo_config() -> dict[str, Any]:
    from .defaults.demo import demo_config

    return demo_config()


def build_parser(*, plugin_commands: bool = True) -> argparse.ArgumentParser:
    """The argument parser, with the commands of installed plugins unless not
    ``plugin_commands``."""
    parser = argparse.ArgumentParser(prog="compatgate", description="An OpenAI-compatible LLM gateway.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the gateway under /v1")
    _add_source(serve)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default=None, choices=LOG_LEVELS,
                       help="default: [gateway] log_level, else info")
    serve.add_argument("--shutdown-grace-seconds", type=float, default=None, metavar="SECONDS",
                       help="on SIGTERM, how long requests in flight may take to finish "
                            "(default: [gateway] shutdown_grace_seconds, else 25)")
    check = commands.add_parser("check", help="load a configuration and its plugins, report problems")
    _add_source(check)
    check.add_argument("--probe", action="store_true",
                       help="start the gateway and ask each provider for its model list")
    check.add_argument("--probe-timeout", type=float, default=15.0, metavar="SECONDS",
                       help="the longest the start-up and each probe may take (default 15)")
    check.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    if plugin_commands:
        plugins = create_plugin_manager((), load_entrypoints=True, instantiate=lambda cls: cls)
        plugins.hook.register_commands(add_command=commands.add_parser)
    return parser


def _add_source(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", default=None, help="TOML configuration (default: ./compatgate.toml)")
    command.add_argument("--demo", action="store_true", help="the offline demo configuration, no file needed")
    command.add_argument("--plugin", action="append", default=[], metavar="MODULE:CLASS",
                         help="also load this plugin (module:Class, a module, or file.py:Class); repeatable")


def main(argv: Sequence[str] | None = None) -> None:
    try:
        args = build_parser().parse_args(argv)
        if hasattr(args, "run"):  # a plugin's command
            raise SystemExit(args.run(args) or 0)
        if args.command == "check":
            raise SystemExit(_check(args))
        _serve(args)
    except ConfigError as exc:
        print(f"compatgate: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def _source(args: argparse.Namespace) -> tuple[str, Config]:
    """Where the configuration comes from (a path, or ``"demo"``) and the configuration."""
    if args.demo:
        if args.config is not None:
            raise ConfigError("--demo and --config exclude each other")
        return _DEMO, load_config(_demo_config())
    source = args.config or "compatgate.toml"
    if args.config is None and not os.path.exists(source):
        raise ConfigError(_NO_CONFIG)
    source = os.path.abspath(source)
    return source, load_config(source)


def _check(args: argparse.Namespace) -> int:
    from .check import run_check
    from .logs import logging_config

    _, config = _source(args)
    logging.config.dictConfig(logging_config("warning"))  # the causes of probe failures
    gateway = Gateway(config, plugins=[import_plugin(spec) for spec in args.plugin])
    return run_check(gateway, args)


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    from .check import diagnose
    from .logs import logging_config

    source, config = _source(args)
    settings = config.gateway
    level = args.log_level or settings.log_level
    log_config = logging_config(level, settings.access_log)
    logging.config.dictConfig(log_config)
    specs = [_absolute(spec) for spec in args.plugin]
    app = create_app(config, [import_plugin(spec) for spec in specs])  # config errors surface here
    for problem in diagnose(app.gateway):
        logger.warning("%s", problem)
    logger.info("%s", _banner(args, source, app.gateway))  # JSON too with access_log = "json"
    grace = args.shutdown_grace_seconds if args.shutdown_grace_seconds is not None else settings.shutdown_grace_seconds
    options: dict[str, Any] = {
        "host": args.host, "port": args.port, "log_level": level, "log_config": log_config,
        "access_log": level == "debug", "timeout_graceful_shutdown": grace,
    }
    if args.workers > 1:
        os.environ[_CONFIG_ENV] = source
        os.environ[_PLUGINS_ENV] = orjson.dumps(specs).decode()
        uvicorn.run("compatgate.cli:worker_app", factory=True, workers=args.workers, **options)
    else:
        uvicorn.run(app, **options)


def _absolute(spec: str) -> str:
    """``spec`` with a file path made absolute (worker processes import it again)."""
    target, sep, attribute = spec.partition(":")
    if target.endswith(".py") or "/" in target or os.sep in target:
        return os.path.abspath(target) + sep + attribute
    return spec


def _banner(args: argparse.Namespace, source: str, gateway: Gateway) -> str:
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}/v1"
    everywhere = " (listening on every interface)" if args.host in ("0.0.0.0", "::") else ""
    if source == _DEMO:
        return (f"serving the demo at {url}{everywhere} — API key 'sk-demo', models 'demo-chat' and "
                "'demo-embedding' (offline, no provider key needed)")
    return (f"serving {source} at {url}{everywhere} — {len(gateway.providers)} providers, "
            f"{len(gateway.models)} models; health: http://{host}:{args.port}/health/ready")
