"""`Router`: the plugin class (entry point ``router``), one instance per gateway.

It routes the names its ``[plugins.router]`` table defines — groups, aliases, wildcard routes —
through the `route_model` hook to a `FallbackProvider`, lists groups and aliases on
``GET /models``, and keeps its state (selection statistics, cooldown circuits, the Redis
connection) on the instance. Without a ``[plugins.router]`` table it does nothing: every hook
returns at once. Another plugin can replace the policy by routing first (any non-``trylast``
`route_model` registered later runs before this one) or by subclassing `Router`.
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from compatgate import ConfigError, ProviderConfig, RequestContext, Route, hookimpl, withdraw_hooks

from .fallback import FallbackProvider
from .health import Health, MemoryHealth
from .plan import Planner
from .redis_health import RedisHealth
from .selection import Stats, order
from .settings import RouterSettings, parse_settings

if TYPE_CHECKING:
    from compatgate import Gateway

__all__ = ["Router"]

logger = logging.getLogger("compatgate.router")


class Router:
    """Model groups, aliases and wildcard routes with load balancing, retries, fallbacks and
    cooldowns. ``settings`` is None when the gateway has no ``[plugins.router]`` table."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        table = gateway.config.plugins.get("router")
        self.settings: RouterSettings = parse_settings(table if table is not None else {}, gateway.config)
        self.active = table is not None
        self.planner: Planner | None = None
        self.stats = Stats()
        self.rng = random.Random(self.settings.seed)
        self.health: Health = self._health()
        self._configs: dict[str, ProviderConfig] = {}
        if not self.active:  # inert at no cost
            withdraw_hooks(self, "register_routes", "startup", "shutdown", "route_model", "list_models",
                           "check_ready")  # fmt: skip

    def _health(self) -> Health:
        settings = self.settings
        if settings.redis_url is not None:
            return RedisHealth(settings.redis_url, settings.cooldown, key_prefix=settings.redis_key_prefix,
                               timeout=settings.redis_timeout)
        return MemoryHealth(settings.cooldown)

    def provider_config(self, name: str) -> ProviderConfig:
        """The configuration of a `FallbackProvider` whose first deployment is on ``name``."""
        config = self._configs.get(name)
        if config is None:
            config = self._configs[name] = ProviderConfig(name=name, type="router")
        return config

    # -- hooks ------------------------------------------------------------------------------

    @hookimpl
    def register_routes(self, gateway: Gateway) -> None:
        """Resolve the deployments once the gateway's providers exist (this runs at
        construction, after them); the router adds no route."""
        if not self.active:
            return
        try:
            self.planner = Planner(self.settings, gateway.providers, gateway.models)
        except ConfigError as exc:
            raise ConfigError(f"{gateway.config.source}: {exc}") from None

    @hookimpl
    async def startup(self) -> None:
        if self.active:
            await self.health.start()

    @hookimpl
    async def shutdown(self) -> None:
        await self.health.close()

    @hookimpl
    async def check_ready(self) -> dict[str, str | None] | None:
        """``router.redis``, with ``redis_url``: Redis answers a ``PING`` (a replica cut off
        from the shared cooldown state leaves the load balancer; requests that still reach it
        are routed as if every deployment were healthy)."""
        if not self.active or self.settings.redis_url is None:
            return None
        try:
            await self.health.ping()
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError; the host goes to the log only
            logger.warning("compatgate-router: not ready: Redis failed (%s)", type(exc).__name__)
            return {"router.redis": f"unreachable ({type(exc).__name__})"}
        return {"router.redis": None}

    @hookimpl
    def route_model(self, ctx: RequestContext, model: str) -> Route | None:
        planner = self.planner
        if planner is None:
            return None
        plan = planner.plan(model)
        if plan is None:
            return None
        stage = plan.stages[0]
        first = order(stage.targets, stage.strategy, self.stats, self.rng)
        return Route(FallbackProvider(self, plan, first), first[0].route.upstream_model, first[0].route.model)

    @hookimpl
    def list_models(self) -> list[dict[str, Any]] | None:
        planner = self.planner
        if planner is None:
            return None
        entries = []
        for name, group in self.settings.groups.items():
            owner = group.owned_by or planner.stages[name].targets[0].provider.owned_by
            entries.append({"id": name, "object": "model", "created": group.created, "owned_by": owner})
        for alias in self.settings.aliases:
            plan = planner.plan(alias)
            if plan is not None:
                head = plan.stages[0].targets[0]
                entry = head.route.model
                owner = (entry.owned_by if entry is not None else None) or head.provider.owned_by
                created = entry.created if entry is not None else 0
                entries.append({"id": alias, "object": "model", "created": created, "owned_by": owner})
        return entries
