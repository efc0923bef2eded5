"""Which limits apply to a request, and what it costs.

A request goes through up to three scopes: its API key (``key_id``), its model (the name the
client asked for) and its upstream provider (``ctx.route.provider.name``). The key's limits are
layered, each layer overriding only the limits it sets:

1. the defaults (``rpm``, ``tpm``, ``tpd``, ``concurrency`` at the top of the table);
2. the tier the key's ``Principal.metadata["ratelimit"]`` names (``[plugins.ratelimit.tiers.<t>]``);
3. the limits in ``Principal.metadata["ratelimit"]`` itself (e.g. set by a billing plugin);
4. the ``[plugins.ratelimit.keys."<key_id>"]`` table: its ``tier``, then its limits (the
   operator's configuration has the last word).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compatgate import Principal, RequestContext
from compatgate.usage import estimate_prompt_tokens

from .backend import Plan, Pool, Window
from .settings import LIMIT_NAMES, Limits, Settings, parse_limit

__all__ = ["METADATA_KEY", "Scope", "build_plan", "estimate_cost", "key_limits", "request_scopes"]

METADATA_KEY = "ratelimit"
MINUTE_MS = 60_000
DAY_MS = 86_400_000
DAY_QUANTUM_MS = 60_000  # the per-day window counts in one-minute buckets


@dataclass(frozen=True, slots=True)
class Scope:
    """One thing whose limits a request counts against: ``key``, ``model`` or ``provider``."""

    kind: str
    name: str
    limits: Limits

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"


def key_limits(settings: Settings, principal: Principal) -> tuple[Limits, list[str]]:
    """The key's limits (see the module's layers), and what was wrong in its metadata."""
    problems: list[str] = []
    limits = settings.defaults
    tier, layer = _metadata(principal.metadata.get(METADATA_KEY), problems)
    if tier is not None:
        if tier in settings.tiers:
            limits = limits.merge(settings.tiers[tier])
        else:
            problems.append(
                f"unknown tier {tier!r} (configured: {', '.join(sorted(settings.tiers)) or 'none'})"
            )
    limits = limits.merge(layer)
    override = settings.keys.get(principal.key_id)
    if override is not None:
        if override.tier is not None:
            limits = limits.merge(settings.tiers[override.tier])
        limits = limits.merge(override.limits)
    return limits.finished(), problems


def _metadata(value: Any, problems: list[str]) -> tuple[str | None, Limits]:
    """``metadata["ratelimit"]``: a tier name, or a mapping with ``tier`` and/or limits."""
    if value is None:
        return None, Limits()
    if isinstance(value, str):
        return value, Limits()
    if not isinstance(value, Mapping):
        problems.append(
            f"metadata[{METADATA_KEY!r}] must be a tier name or a mapping, not {type(value).__name__}"
        )
        return None, Limits()
    tier = value.get("tier")
    if tier is not None and not isinstance(tier, str):
        problems.append(f"metadata[{METADATA_KEY!r}]['tier'] must be a string")
        tier = None
    given: dict[str, int] = {}
    for name in value:
        if name == "tier":
            continue
        if name not in LIMIT_NAMES:
            problems.append(
                f"metadata[{METADATA_KEY!r}] has unknown key {name!r} (known: tier, {', '.join(LIMIT_NAMES)})"
            )
            continue
        raw = value[name]
        if raw is None:  # "not set here"
            continue
        limit = parse_limit(raw)
        if limit is None:
            problems.append(
                f'metadata[{METADATA_KEY!r}][{name!r}] must be a positive integer or "unlimited", not {raw!r}'
            )
            continue
        given[name] = limit
    return tier, Limits(**given)


def request_scopes(settings: Settings, ctx: RequestContext) -> tuple[list[Scope], list[str]]:
    """The scopes with limits that ``ctx`` counts against (what is known of it so far)."""
    scopes: list[Scope] = []
    problems: list[str] = []
    if ctx.principal is not None:
        limits, problems = key_limits(settings, ctx.principal)
        if limits:
            scopes.append(Scope("key", ctx.principal.key_id, limits))
    if ctx.model and ctx.model in settings.models:
        scopes.append(Scope("model", ctx.model, settings.models[ctx.model]))
    if ctx.route is not None:
        provider = ctx.route.provider.name
        if provider in settings.providers:
            scopes.append(Scope("provider", provider, settings.providers[provider]))
    return [scope for scope in scopes if scope.limits], problems


def estimate_cost(ctx: RequestContext, default_max_tokens: int) -> int:
    """The tokens reserved at admission, from what the gateway measured on the request as it
    goes upstream (``ctx.units``): the prompt estimate plus the output cap it carries for all
    its choices (``default_max_tokens`` per choice when neither the request nor the
    configuration sets one; nothing for operations that generate no tokens)."""
    units = ctx.units
    if units is None:  # not an operation of the table (a plugin calling the hooks itself)
        return estimate_prompt_tokens(ctx.body) + default_max_tokens
    output = units.output_tokens
    if output is None:
        choices = _positive_int(ctx.sent.get("n")) or 1
        output = default_max_tokens * choices
    return units.prompt_tokens + output


def build_plan(scopes: list[Scope], cost: int) -> Plan:
    """The windows and pools of ``scopes`` for a request of ``cost`` tokens."""
    windows: list[Window] = []
    pools: list[Pool] = []
    for scope in scopes:
        base, limits = f"{scope.kind}:{scope.name}", scope.limits
        if limits.rpm:
            windows.append(Window(f"{base}:rpm", "rpm", scope.label, limits.rpm, MINUTE_MS, 1, 1))
        if limits.tpm:
            windows.append(
                Window(f"{base}:tpm", "tpm", scope.label, limits.tpm, MINUTE_MS, 1, cost)
            )
        if limits.tpd:
            windows.append(
                Window(f"{base}:tpd", "tpd", scope.label, limits.tpd, DAY_MS, DAY_QUANTUM_MS, cost)
            )
        if limits.concurrency:
            pools.append(Pool(f"{base}:concurrency", scope.label, limits.concurrency))
    return Plan(tuple(windows), tuple(pools))


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
