"""The gateway as configured and as it behaves: models and their prices, providers with their
last hour of traffic, the router's deployments and cooldowns (when compatgate-router is
configured), and the latest upstream errors of the ledger."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from .auth import console_of, guard

__all__ = ["models_page", "providers_page"]

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def _router(request: Request) -> Any:
    """The gateway's active compatgate-router plugin, if any (found by what it publishes)."""
    for plugin in console_of(request).gateway.pm.get_plugins():
        if getattr(plugin, "active", False) and getattr(plugin, "planner", None) is not None \
                and hasattr(plugin, "health"):
            return plugin
    return None


@guard("operator")
async def models_page(request: Request) -> Response:
    console = console_of(request)
    gateway = console.gateway
    billing = console.billing
    assert billing.settings is not None
    configured_prices = dict(gateway.config.plugin("billing").get("prices", {}))
    models = []
    for model in gateway.models.values():
        price = billing.settings.prices.lookup(model.name)
        models.append({"name": model.name, "provider": model.provider,
                       "upstream_model": model.upstream_model, "price": price})
    groups = []
    router = _router(request)
    if router is not None:
        for name, group in router.settings.groups.items():
            groups.append({
                "name": name, "price": billing.settings.prices.lookup(name),
                "deployments": [f"{d.provider}/{d.upstream_model or name} (weight {d.weight:g})"
                                for d in group.deployments],
                "fallbacks": list(group.fallbacks),
            })
    return console.render(request, "models.html", {
        "models": models, "groups": groups, "prices": configured_prices,
        "unpriced": billing.settings.unpriced, "nav": "models",
    })


@guard("operator")
async def providers_page(request: Request) -> Response:
    console = console_of(request)
    gateway = console.gateway
    reports = await console.reports()
    now = console.now()
    traffic = {row.group: row for row in await reports.series(now - HOUR_MS, now + 1, HOUR_MS + 1, by="provider")}
    providers = []
    for name, provider in gateway.providers.items():
        config = gateway.config.providers.get(name)
        row = traffic.get(name)
        providers.append({
            "name": name, "type": config.type if config else "", "host": _host(config.base_url if config else None),
            "requests": row.requests if row else 0, "errors": row.errors if row else 0,
            "error_rate": round(100 * row.errors / row.requests, 1) if row and row.requests else 0.0,
            "latency": round(row.latency_ms_sum / row.requests) if row and row.requests else None,
        })
    deployments = []
    router = _router(request)
    if router is not None:
        seen = set()
        for stage in router.planner.stages.values():
            for target in stage.targets:
                if target.key in seen:
                    continue
                seen.add(target.key)
                state = await router.health.state(target.key)
                deployments.append({"group": stage.name, "key": target.key, "state": state.state,
                                    "retry_in": round(state.retry_in, 1), "failures": state.failures})
    errors = await reports.upstream_errors(now - DAY_MS, limit=25)
    return console.render(request, "providers.html", {
        "providers": providers, "deployments": deployments, "router": router is not None,
        "errors": errors, "nav": "providers",
    })


def _host(url: str | None) -> str:
    """Scheme, host and port of an upstream URL: never its credentials, path or query."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}"
