"""The ``[plugins.router]`` table, checked at construction.

Every mistake is a `compatgate.ConfigError` naming the key
(``plugins.router.groups.gpt-4o.deployments[1].weight``). Names are checked against the
gateway's ``[providers]`` and ``[[models]]``; the options of a deployment are checked by its
provider once the providers exist (see `Router.register_routes`).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from compatgate import Config, ConfigError

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
    checker = _Checker(config)
    return checker.settings(table)


class _Checker:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.models = {model.name for model in config.models}

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.config.source}: {where} {message}")

    def settings(self, table: Mapping[str, Any]) -> RouterSettings:
        self.only(table, WHERE, {"strategy", "seed", "groups", "aliases", "routes", "retry", "cooldown",
                                 "redis_url", "redis_key_prefix", "redis_timeout"})
        strategy = self.strategy(table, WHERE) or "weighted"
        seed = self.typed(table, WHERE, "seed", int, None)
        groups_table = self.table(table.get("groups", {}), f"{WHERE}.groups")
        groups = {name: self.group(name, self.table(value, f"{WHERE}.groups.{name}"))
                  for name, value in groups_table.items()}
        routes_raw = table.get("routes", [])
        if not isinstance(routes_raw, list):
            raise self.fail(f"{WHERE}.routes", "must be an array of tables ([[plugins.router.routes]])")
        routes = tuple(self.route(i, self.table(item, f"{WHERE}.routes[{i}]")) for i, item in enumerate(routes_raw))
        targets = set(groups) | self.models
        for name, group in groups.items():
            self.fallbacks(group.fallbacks, f"{WHERE}.groups.{name}.fallbacks", targets, name)
        for i, route in enumerate(routes):
            self.fallbacks(route.fallbacks, f"{WHERE}.routes[{i}].fallbacks", targets, None)
        aliases = self.aliases(self.table(table.get("aliases", {}), f"{WHERE}.aliases"), groups, routes)
        redis_url = self.typed(table, WHERE, "redis_url", str, None)
        if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise self.fail(f"{WHERE}.redis_url", "must be a redis://, rediss:// or unix:// URL")
        prefix = self.typed(table, WHERE, "redis_key_prefix", str, "compatgate:router")
        if not prefix:
            raise self.fail(f"{WHERE}.redis_key_prefix", "must not be empty")
        return RouterSettings(
            groups=groups,
            aliases=aliases,
            routes=routes,
            strategy=strategy,
            retry=self.retry(self.table(table.get("retry", {}), f"{WHERE}.retry")),
            cooldown=self.cooldown(self.table(table.get("cooldown", {}), f"{WHERE}.cooldown")),
            redis_url=redis_url,
            redis_key_prefix=prefix,
            redis_timeout=self.number(table, WHERE, "redis_timeout", 0.5, positive=True),
            seed=seed,
        )

    def group(self, name: str, table: Mapping[str, Any]) -> Group:
        where = f"{WHERE}.groups.{name}"
        self.only(table, where, _GROUP_KEYS)
        if name in self.models:
            raise self.fail(where, "has the name of a [[models]] entry; rename one of them")
        raw = table.get("deployments")
        if not isinstance(raw, list) or not raw:
            raise self.fail(f"{where}.deployments", "must be a non-empty array of tables "
                            "({ provider = \"...\", upstream_model = \"...\", weight = 1 })")
        deployments = tuple(
            self.deployment(name, self.table(item, f"{where}.deployments[{i}]"), f"{where}.deployments[{i}]")
            for i, item in enumerate(raw)
        )
        keys = [deployment.key for deployment in deployments]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                raise self.fail(f"{where}.deployments[{i}]", f"repeats the deployment {key!r}")
        return Group(
            name=name,
            deployments=deployments,
            strategy=self.strategy(table, where),
            fallbacks=self.names(table, where, "fallbacks"),
            fallback_on=self.reasons(table, where, "fallback_on", frozenset(REASONS), REASONS),
            owned_by=self.typed(table, where, "owned_by", str, None),
            created=self.typed(table, where, "created", int, 0),
        )

    def deployment(self, group: str, table: Mapping[str, Any], where: str) -> Deployment:
        provider = self.provider(table, where)
        upstream = self.typed(table, where, "upstream_model", str, group)
        if not upstream:
            raise self.fail(f"{where}.upstream_model", "must not be empty")
        weight = self.number(table, where, "weight", 1.0, positive=True)
        options = {key: value for key, value in table.items() if key not in _DEPLOYMENT_KEYS}
        return Deployment(provider, upstream, weight, options)

    def route(self, index: int, table: Mapping[str, Any]) -> WildcardRoute:
        where = f"{WHERE}.routes[{index}]"
        self.only(table, where, _ROUTE_KEYS)
        pattern = self.typed(table, where, "match", str, None)
        if not pattern:
            raise self.fail(f"{where}.match", "is required: a glob such as \"claude-*\"")
        return WildcardRoute(
            match=pattern,
            provider=self.provider(table, where),
            fallbacks=self.names(table, where, "fallbacks"),
            fallback_on=self.reasons(table, where, "fallback_on", frozenset(REASONS), REASONS),
        )

    def aliases(
        self, table: Mapping[str, Any], groups: Mapping[str, Group], routes: tuple[WildcardRoute, ...]
    ) -> dict[str, str]:
        aliases: dict[str, str] = {}
        for alias, target in table.items():
            where = f"{WHERE}.aliases.{alias}"
            if not isinstance(target, str) or not target:
                raise self.fail(where, "must be a model name (a string)")
            if alias in groups or alias in self.models:
                raise self.fail(where, "is already the name of a group or a [[models]] entry")
            if target in table:
                raise self.fail(where, f"names another alias ({target!r}); point it at the model itself")
            known = target in groups or target in self.models
            if not known and not any(fnmatch.fnmatchcase(target, route.match) for route in routes):
                raise self.fail(where, f"names {target!r}, which is neither a group, a [[models]] entry, "
                                "nor matched by a route")
            aliases[alias] = target
        return aliases

    def fallbacks(self, names: tuple[str, ...], where: str, targets: set[str], own: str | None) -> None:
        for name in names:
            if name == own:
                raise self.fail(where, f"names the group itself ({name!r})")
            if name not in targets:
                known = ", ".join(sorted(targets)) or "none"
                raise self.fail(where, f"names {name!r}, which is neither a group nor a [[models]] entry "
                                f"(known: {known})")

    def retry(self, table: Mapping[str, Any]) -> RetryPolicy:
        where = f"{WHERE}.retry"
        self.only(table, where, {"max_attempts", "max_seconds", "backoff_base", "backoff_max",
                                 "max_retry_after", "on"})
        attempts = self.typed(table, where, "max_attempts", int, 3)
        if not 1 <= attempts <= 100:
            raise self.fail(f"{where}.max_attempts", "must be between 1 and 100")
        base = self.number(table, where, "backoff_base", 0.25)
        most = self.number(table, where, "backoff_max", max(4.0, base))
        if most < base:
            raise self.fail(f"{where}.backoff_max", "must not be smaller than backoff_base")
        return RetryPolicy(
            max_attempts=attempts,
            max_seconds=self.number(table, where, "max_seconds", 600.0, positive=True),
            backoff_base=base,
            backoff_max=most,
            max_retry_after=self.number(table, where, "max_retry_after", 10.0),
            on=self.reasons(table, where, "on", DEPLOYMENT_FAILURES, tuple(sorted(DEPLOYMENT_FAILURES))),
        )

    def cooldown(self, table: Mapping[str, Any]) -> CooldownPolicy:
        where = f"{WHERE}.cooldown"
        self.only(table, where, {"failures", "window", "seconds"})
        failures = self.typed(table, where, "failures", int, 3)
        if failures < 0:
            raise self.fail(f"{where}.failures", "must be 0 (no cooldown) or more")
        return CooldownPolicy(
            failures=failures,
            window=self.number(table, where, "window", 60.0, positive=True),
            seconds=self.number(table, where, "seconds", 30.0, positive=True),
        )

    # -- typed reading ----------------------------------------------------------------------

    def provider(self, table: Mapping[str, Any], where: str) -> str:
        provider: str | None = self.typed(table, where, "provider", str, None)
        if provider is None or provider not in self.config.providers:
            known = ", ".join(sorted(self.config.providers)) or "none"
            raise self.fail(f"{where}.provider", f"must name one of the [providers] (defined: {known})")
        return provider

    def strategy(self, table: Mapping[str, Any], where: str) -> str | None:
        strategy: str | None = self.typed(table, where, "strategy", str, None)
        if strategy is not None and strategy not in STRATEGIES:
            raise self.fail(f"{where}.strategy", f"must be one of {', '.join(map(repr, STRATEGIES))}")
        return strategy

    def names(self, table: Mapping[str, Any], where: str, key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise self.fail(f"{where}.{key}", "must be an array of model names")
        return tuple(value)

    def reasons(
        self, table: Mapping[str, Any], where: str, key: str, default: frozenset[str], allowed: tuple[str, ...]
    ) -> frozenset[str]:
        if key not in table:
            return default
        value = table[key]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.fail(f"{where}.{key}", "must be an array of reasons")
        for item in value:
            if item not in allowed:
                raise self.fail(f"{where}.{key}", f"holds {item!r}; the reasons here are "
                                f"{', '.join(map(repr, allowed))}")
        return frozenset(value)

    def number(self, table: Mapping[str, Any], where: str, key: str, default: float,
               *, positive: bool = False) -> float:
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(f"{where}.{key}", "must be a number")
        if value < 0 or (positive and value == 0):
            raise self.fail(f"{where}.{key}", "must be positive" if positive else "must not be negative")
        return float(value)

    def typed(self, table: Mapping[str, Any], where: str, key: str, kind: type, default: Any) -> Any:
        if key not in table:
            return default
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise self.fail(f"{where}.{key}", f"must be of type {kind.__name__}")
        return value

    def table(self, value: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(where, "must be a table")
        return value

    def only(self, table: Mapping[str, Any], where: str, allowed: set[str]) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.fail(f"{where}.{unknown[0]}", f"is not a known key (allowed: {', '.join(sorted(allowed))})")
