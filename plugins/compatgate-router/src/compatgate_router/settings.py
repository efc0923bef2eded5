"""The ``[plugins.router]`` table, checked at construction.

Every mistake is a `compatgate.ConfigError` naming the key
(``plugins.router.groups.gpt-4o.deployments[1].weight``). Names are checked against the
gateway's ``[providers]`` and ``[[models]]``; the options of a deployment are checked by its
provider once the providers exist (see `Router.configure`).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compatgate import Config
from compatgate.settings import Table

__all__ = [
    "DEPLOYMENT_FAILURES",
    "REASONS",
    "STRATEGIES",
    "CooldownPolicy",
    "Deployment",
    "Group",
    "RetryPolicy",
    "RouterSettings",
    "WildcardRoute",
    "parse_settings",
]

WHERE = "plugins.router"
STRATEGIES = ("weighted", "least_in_flight", "lowest_latency", "ordered")
REASONS = ("unreachable", "5xx", "429", "timeout", "context_length_exceeded")
# The reasons that say a deployment is failing (they count toward its cooldown and may be
# retried); context_length_exceeded says the request is too long for a model: fallback only.
DEPLOYMENT_FAILURES = frozenset(("unreachable", "5xx", "429", "timeout"))
_GROUP_KEYS = {"deployments", "strategy", "fallbacks", "fallback_on", "owned_by", "created"}
_DEPLOYMENT_KEYS = {"provider", "upstream_model", "weight"}
_ROUTE_KEYS = {"match", "provider", "fallbacks", "fallback_on"}


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream a group may use: a provider, the model name sent to it, its weight, and
    options for the provider (like a ``[[models]]`` entry's extra keys)."""

    provider: str
    upstream_model: str
    weight: float = 1.0
    options: Mapping[str, Any] | None = None

    @property
    def key(self) -> str:
        """What names the deployment in cooldown and selection state."""
        return f"{self.provider}/{self.upstream_model}"


@dataclass(frozen=True, slots=True)
class Group:
    """A public model name served by several deployments, and the groups it falls back to."""

    name: str
    deployments: tuple[Deployment, ...]
    strategy: str | None = None
    fallbacks: tuple[str, ...] = ()
    fallback_on: frozenset[str] = frozenset(REASONS)
    owned_by: str | None = None
    created: int = 0


@dataclass(frozen=True, slots=True)
class WildcardRoute:
    """Every requested model matching ``match`` (a glob) goes to ``provider`` as is."""

    match: str
    provider: str
    fallbacks: tuple[str, ...] = ()
    fallback_on: frozenset[str] = frozenset(REASONS)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long one request may try (see the README)."""

    max_attempts: int = 3
    max_seconds: float = 600.0
    backoff_base: float = 0.25
    backoff_max: float = 4.0
    max_retry_after: float = 10.0
    on: frozenset[str] = DEPLOYMENT_FAILURES


@dataclass(frozen=True, slots=True)
class CooldownPolicy:
    """``failures`` deployment failures within ``window`` seconds skip a deployment for
    ``seconds``, after which one probe request is let through; ``failures = 0`` disables it."""

    failures: int = 3
    window: float = 60.0
    seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class RouterSettings:
    groups: Mapping[str, Group]
    aliases: Mapping[str, str]
    routes: tuple[WildcardRoute, ...]
    strategy: str = "weighted"
    retry: RetryPolicy = RetryPolicy()
    cooldown: CooldownPolicy = CooldownPolicy()
    redis_url: str | None = None
    redis_key_prefix: str = "compatgate:router"
    redis_timeout: float = 0.5
    seed: int | None = None


def parse_settings(table: Mapping[str, Any], config: Config) -> RouterSettings:
    """Check ``[plugins.router]`` against the gateway's configuration."""
    return _Checker(config).settings(Table(table, WHERE, config.source))


# How the router words a key it does not know.
_UNKNOWN = "{path} is not a known key{hint} (allowed: {allowed})"


class _Checker:
    """Reads the tables of ``[plugins.router]`` (`compatgate.settings.Table`) with the rules
    that need the gateway's configuration: provider and model names."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.models = {model.name for model in config.models}

    def settings(self, table: Table) -> RouterSettings:
        table.only({"strategy", "seed", "groups", "aliases", "routes", "retry", "cooldown", "redis_url",
                    "redis_key_prefix", "redis_timeout"}, message=_UNKNOWN)
        strategy = self.strategy(table) or "weighted"
        seed = table.value("seed", int)
        groups_table = table.table("groups")
        groups = {name: self.group(name, Table(value, groups_table.path(name), table.source))
                  for name, value in groups_table.items()}
        routes = tuple(self.route(item) for item in table.tables("routes"))
        targets = set(groups) | self.models
        for name, group in groups.items():
            self.fallbacks(group.fallbacks, groups_table.table(name), targets, name)
        for item, route in zip(table.tables("routes"), routes, strict=True):
            self.fallbacks(route.fallbacks, item, targets, None)
        aliases = self.aliases(table.table("aliases"), groups, routes)
        redis_url = table.value("redis_url", str)
        if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise table.error("must be a redis://, rediss:// or unix:// URL", "redis_url")
        prefix = table.value("redis_key_prefix", str, "compatgate:router")
        if not prefix:
            raise table.error("must not be empty", "redis_key_prefix")
        return RouterSettings(
            groups=groups,
            aliases=aliases,
            routes=routes,
            strategy=strategy,
            retry=self.retry(table.table("retry")),
            cooldown=self.cooldown(table.table("cooldown")),
            redis_url=redis_url,
            redis_key_prefix=prefix,
            redis_timeout=_number(table, "redis_timeout", 0.5, positive=True),
            seed=seed,
        )

    def group(self, name: str, table: Table) -> Group:
        table.only(_GROUP_KEYS, message=_UNKNOWN)
        if name in self.models:
            raise table.error("has the name of a [[models]] entry; rename one of them")
        raw = table.get("deployments")
        if not isinstance(raw, list) or not raw:
            raise table.error("must be a non-empty array of tables "
                              "({ provider = \"...\", upstream_model = \"...\", weight = 1 })", "deployments")
        deployments = tuple(self.deployment(name, item) for item in table.tables("deployments"))
        keys = [deployment.key for deployment in deployments]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                raise table.error(f"repeats the deployment {key!r}", f"deployments[{i}]")
        return Group(
            name=name,
            deployments=deployments,
            strategy=self.strategy(table),
            fallbacks=_names(table, "fallbacks"),
            fallback_on=_reasons(table, "fallback_on", frozenset(REASONS), REASONS),
            owned_by=table.value("owned_by", str),
            created=table.value("created", int, 0),
        )

    def deployment(self, group: str, table: Table) -> Deployment:
        provider = self.provider(table)
        upstream = table.value("upstream_model", str, group)
        if not upstream:
            raise table.error("must not be empty", "upstream_model")
        weight = _number(table, "weight", 1.0, positive=True)
        options = {key: value for key, value in table.items() if key not in _DEPLOYMENT_KEYS}
        return Deployment(provider, upstream, weight, options)

    def route(self, table: Table) -> WildcardRoute:
        table.only(_ROUTE_KEYS, message=_UNKNOWN)
        pattern = table.value("match", str)
        if not pattern:
            raise table.error("is required: a glob such as \"claude-*\"", "match")
        return WildcardRoute(
            match=pattern,
            provider=self.provider(table),
            fallbacks=_names(table, "fallbacks"),
            fallback_on=_reasons(table, "fallback_on", frozenset(REASONS), REASONS),
        )

    def aliases(self, table: Table, groups: Mapping[str, Group], routes: tuple[WildcardRoute, ...]) -> dict[str, str]:
        aliases: dict[str, str] = {}
        for alias, target in table.items():
            if not isinstance(target, str) or not target:
                raise table.error("must be a model name (a string)", alias)
            if alias in groups or alias in self.models:
                raise table.error("is already the name of a group or a [[models]] entry", alias)
            if target in table:
                raise table.error(f"names another alias ({target!r}); point it at the model itself", alias)
            known = target in groups or target in self.models
            if not known and not any(fnmatch.fnmatchcase(target, route.match) for route in routes):
                raise table.error(f"names {target!r}, which is neither a group, a [[models]] entry, "
                                  "nor matched by a route", alias)
            aliases[alias] = target
        return aliases

    def fallbacks(self, names: tuple[str, ...], table: Table, targets: set[str], own: str | None) -> None:
        for name in names:
            if name == own:
                raise table.error(f"names the group itself ({name!r})", "fallbacks")
            if name not in targets:
                known = ", ".join(sorted(targets)) or "none"
                raise table.error(f"names {name!r}, which is neither a group nor a [[models]] entry "
                                  f"(known: {known})", "fallbacks")

    def retry(self, table: Table) -> RetryPolicy:
        table.only({"max_attempts", "max_seconds", "backoff_base", "backoff_max", "max_retry_after", "on"},
                   message=_UNKNOWN)
        attempts = table.value("max_attempts", int, 3)
        if not 1 <= attempts <= 100:
            raise table.error("must be between 1 and 100", "max_attempts")
        base = _number(table, "backoff_base", 0.25)
        most = _number(table, "backoff_max", max(4.0, base))
        if most < base:
            raise table.error("must not be smaller than backoff_base", "backoff_max")
        return RetryPolicy(
            max_attempts=attempts,
            max_seconds=_number(table, "max_seconds", 600.0, positive=True),
            backoff_base=base,
            backoff_max=most,
            max_retry_after=_number(table, "max_retry_after", 10.0),
            on=_reasons(table, "on", DEPLOYMENT_FAILURES, tuple(sorted(DEPLOYMENT_FAILURES))),
        )

    def cooldown(self, table: Table) -> CooldownPolicy:
        table.only({"failures", "window", "seconds"}, message=_UNKNOWN)
        failures = table.value("failures", int, 3)
        if failures < 0:
            raise table.error("must be 0 (no cooldown) or more", "failures")
        return CooldownPolicy(
            failures=failures,
            window=_number(table, "window", 60.0, positive=True),
            seconds=_number(table, "seconds", 30.0, positive=True),
        )

    def provider(self, table: Table) -> str:
        provider = table.value("provider", str)
        if provider is None or provider not in self.config.providers:
            known = ", ".join(sorted(self.config.providers)) or "none"
            raise table.error(f"must name one of the [providers] (defined: {known})", "provider")
        return provider

    def strategy(self, table: Table) -> str | None:
        strategy = table.value("strategy", str)
        if strategy is not None and strategy not in STRATEGIES:
            raise table.error(f"must be one of {', '.join(map(repr, STRATEGIES))}", "strategy")
        return strategy


def _names(table: Table, key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise table.error("must be an array of model names", key)
    return tuple(value)


def _reasons(table: Table, key: str, default: frozenset[str], allowed: tuple[str, ...]) -> frozenset[str]:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise table.error("must be an array of reasons", key)
    for item in value:
        if item not in allowed:
            raise table.error(f"holds {item!r}; the reasons here are {', '.join(map(repr, allowed))}", key)
    return frozenset(value)


def _number(table: Table, key: str, default: float, *, positive: bool = False) -> float:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise table.error("must be a number", key)
    if value < 0 or (positive and value == 0):
        raise table.error("must be positive" if positive else "must not be negative", key)
    return float(value)
