"""``compatgate check``: load a configuration and its plugins as ``serve`` would, list what was
loaded, and report what cannot work.

A configuration error (an unknown key, a ``base_url`` without ``http://``/``https://``, a
provider type no plugin serves, a misspelled hook...) stops it with exit status 2, as it stops
``serve``. Then `diagnose` finds what loads but cannot work — ``serve`` logs the same
problems at start-up:

- error: no ``[gateway] api_keys`` and no authentication plugin (every request would get 401);
- warning: a ``[plugins.<name>]`` table that no plugin looked up (a typo does nothing);
- warning: no ``[[models]]`` and no plugin routing models (every request would get 404).

``--probe`` then starts the gateway (every plugin's start-up: databases, Redis), asks each
provider for its model list (proving the URL and the key), warns about configured
``upstream_model`` names the upstream does not list, and runs the readiness checks.

Exit status: 0 when nothing is wrong (warnings allowed, unless ``--strict``), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, entry_points, packages_distributions, version
from typing import Literal

from starlette.requests import Request

from .context import RequestContext
from .exceptions import GatewayError
from .gateway import Gateway
from .health import readiness
from .hints import did_you_mean
from .plugins import DEFAULT_PLUGINS
from .http import display_url, scrub_urls
from .provider import HTTPProvider

__all__ = ["Problem", "diagnose", "plugin_rows", "probe", "run_check"]

_AUTH = "compatgate.defaults.auth"
_ROUTING = "compatgate.defaults.routing"


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that will not work: ``"error"`` (requests fail) or ``"warning"``."""

    level: Literal["error", "warning"]
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def diagnose(gateway: Gateway) -> list[Problem]:
    """What in ``gateway``'s configuration loads but cannot work."""
    problems: list[Problem] = []
    config, pm = gateway.config, gateway.pm
    authenticators = [pm.get_name(i.plugin) for i in pm.hook.authenticate.get_hookimpls()]
    if not config.gateway.api_keys and authenticators == [_AUTH]:
        problems.append(Problem("error", (
            "no client can authenticate, so every request will get 401: [gateway] api_keys is "
            "empty and no plugin implements authenticate (add api_keys, or configure an "
            "authentication plugin such as [plugins.billing])"
        )))
    routers = [pm.get_name(i.plugin) for i in pm.hook.route_model.get_hookimpls()]
    if not config.models and routers == [_ROUTING]:
        problems.append(Problem("warning", (
            "no [[models]] and no plugin routing models, so every request will get 404 model_not_found"
        )))
    known = sorted(config.plugins.looked_up | {ep.name for ep in entry_points(group="compatgate")})
    for table in config.plugins.unread():
        problems.append(Problem("warning", (
            f"[plugins.{table}] is read by no loaded plugin, so it does nothing"
            f"{did_you_mean(table, known, template='[plugins.{}]')}"
        )))
    return problems


def plugin_rows(gateway: Gateway) -> list[tuple[str, str, str]]:
    """One ``(name, origin, hooks)`` row per loaded plugin, the built-in ones in the last row."""
    pm = gateway.pm
    installed = {ep.name: ep for ep in entry_points(group="compatgate")}
    rows, builtin = [], []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin) or repr(plugin)
        if name in DEFAULT_PLUGINS:
            builtin.append(name.rsplit(".", 1)[1])
            continue
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())
        entry_point = installed.get(name)
        if entry_point is not None and entry_point.dist is not None:
            origin = f"{entry_point.dist.name} {entry_point.dist.version}"
        else:
            origin = _origin(plugin)
        serving = [hook for hook in hooks if hook != "register_commands"]
        if not serving:
            serving = ["inert (not configured)"] + (["register_commands"] if hooks else [])
        rows.append((name, origin, ", ".join(serving)))
    from . import __version__

    rows.sort()
    builtin.sort(key=lambda short: [d.rsplit(".", 1)[1] for d in DEFAULT_PLUGINS].index(short))
    rows.append(("built-in", f"compatgate {__version__}", ", ".join(builtin)))
    return rows


def _origin(plugin: object) -> str:
    module = inspect.getmodule(plugin if inspect.ismodule(plugin) or isinstance(plugin, type) else type(plugin))
    if module is None:
        return "-"
    top = module.__name__.split(".", 1)[0]
    for distribution in packages_distributions().get(top, ()):
        try:
            return f"{distribution} {version(distribution)}"
        except PackageNotFoundError:
            continue
    path = getattr(module, "__file__", None)
    return f"local file {os.path.relpath(path)}" if path else module.__name__


async def probe(gateway: Gateway, timeout: float) -> tuple[list[str], list[Problem]]:
    """Start ``gateway``, ask every provider for its model list and run the readiness checks;
    the lines to show and the problems found. The gateway is closed at the end."""
    lines: list[str] = []
    problems: list[Problem] = []
    try:
        await asyncio.wait_for(gateway.startup(), timeout)
    except Exception as exc:
        reason = "no answer within the probe timeout" if isinstance(exc, TimeoutError) else (
            f"{type(exc).__name__}: {scrub_urls(str(exc))}")
        return lines, [Problem("error", f"the gateway's start-up failed: {reason}")]
    try:
        for name, provider in gateway.providers.items():
            problem = await _probe_provider(gateway, name, provider, timeout, lines, problems)
            if problem is not None:
                problems.append(problem)
        ready, checks = await readiness(gateway)
        lines.append(f"ready: {'yes' if ready else 'no'} ({', '.join(f'{k}: {v}' for k, v in checks.items())})")
        problems += [Problem("error", f"not ready: {k}: {v}") for k, v in checks.items() if v != "ok"]
    finally:
        await gateway.aclose()
    return lines, problems


async def _probe_provider(gateway: Gateway, name: str, provider: object, timeout: float,
                          lines: list[str], problems: list[Problem]) -> Problem | None:
    from .provider import Provider

    assert isinstance(provider, Provider)
    where = f" (GET {display_url(provider.url(provider.models_path))})" if isinstance(provider, HTTPProvider) else ""
    request = Request({"type": "http", "method": "GET", "path": "/models", "headers": [], "query_string": b""})
    ctx = RequestContext(gateway, f"probe_{os.urandom(8).hex()}", "models", request)
    started = time.perf_counter()
    try:
        ids = await asyncio.wait_for(provider.upstream_models(ctx), timeout)
    except TimeoutError:
        return Problem("error", f"provider {name}: no answer to the probe within {timeout:g} s{where}")
    except GatewayError as exc:
        code = f" ({exc.code})" if exc.code else ""
        return Problem("error", f"provider {name}: the probe failed{where}: HTTP {exc.status_code}{code}: {exc.message}")
    except Exception as exc:  # a provider or transport bug: still a report, not a traceback
        detail = scrub_urls(" ".join(str(exc).split()))
        return Problem("error", f"provider {name}: the probe failed{where}: {type(exc).__name__}: {detail}")
    if ids is None:
        lines.append(f"provider {name}: type {provider.type!r} has no upstream to probe")
        return None
    elapsed = (time.perf_counter() - started) * 1000
    lines.append(f"provider {name}: ok{where}: {len(ids)} models listed in {elapsed:.0f} ms")
    for model in gateway.models.values():
        if ids and model.provider == name and model.upstream_model not in ids:
            problems.append(Problem("warning", (
                f"model {model.name!r}: provider {name} does not list the upstream model "
                f"{model.upstream_model!r}{did_you_mean(model.upstream_model, ids)}"
            )))
    return None


def run_check(gateway: Gateway, args: argparse.Namespace) -> int:
    """Print the report of ``compatgate check`` for ``gateway``; the exit status."""
    config = gateway.config
    out = sys.stdout
    source = "the offline demo (--demo)" if args.demo else config.source
    print(f"configuration: {source}", file=out)
    providers = ", ".join(
        f"{name} ({p.type}{', ' + display_url(p.config.base_url) if p.config.base_url else ''})"
        for name, p in gateway.providers.items()
    ) or "none"
    print(f"providers: {providers}", file=out)
    print(f"models: {', '.join(gateway.models) or 'none'}", file=out)
    print("plugins:", file=out)
    rows = plugin_rows(gateway)
    widths = [max(len(row[i]) for row in rows) for i in (0, 1)]
    for name, origin, hooks in rows:
        print(f"  {name:<{widths[0]}}  {origin:<{widths[1]}}  {hooks}", file=out)
    problems = diagnose(gateway)
    if args.probe:
        lines, found = asyncio.run(probe(gateway, args.probe_timeout))
        for line in lines:
            print(line, file=out)
        problems += found
    for problem in problems:
        print(problem, file=out)
    errors = sum(p.level == "error" for p in problems)
    warnings = len(problems) - errors
    if errors or (warnings and args.strict):
        print(f"failed: {errors} error(s), {warnings} warning(s)", file=out)
        return 1
    summary = (f"ok: {len(gateway.providers)} providers, {len(gateway.models)} models, "
               f"provider types: {', '.join(sorted(gateway.provider_types))}")
    print(summary + (f" ({warnings} warning(s))" if warnings else ""), file=out)
    return 0
