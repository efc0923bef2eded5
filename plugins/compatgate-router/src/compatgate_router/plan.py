"""What the router tries for one public model name: stages (the group, then its fallbacks), each
a set of resolved deployments (`Target`) with a selection strategy.

`Planner` resolves the checked settings against the gateway's providers once they exist: each
deployment becomes a `Target` whose `Route` carries a `ModelConfig` (so a provider reads its
per-model options from ``ctx.route.model`` as it does for ``[[models]]``), checked by the
provider's ``check_model``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

from compatgate import ConfigError, ModelConfig, Provider, Route

from .settings import WHERE, Group, RouterSettings

__all__ = ["Plan", "Planner", "Stage", "Target"]

_WILDCARD_CACHE = 1024  # wildcard plans kept (clients choose the names: bounded)


@dataclass(frozen=True, slots=True)
class Target:
    """A deployment ready to be tried: ``key`` names it in cooldown and selection state."""

    key: str
    provider: Provider
    route: Route
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Stage:
    """One group of a plan: its deployments and how to choose among them."""

    name: str
    targets: tuple[Target, ...]
    strategy: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The stages tried for ``model`` (the group first, then its fallbacks in order) and the
    failure reasons that move on to the next stage."""

    model: str
    stages: tuple[Stage, ...]
    fallback_on: frozenset[str]


class Planner:
    """The plans of every routed name: groups, aliases, wildcard routes."""

    def __init__(
        self, settings: RouterSettings, providers: Mapping[str, Provider], models: Mapping[str, ModelConfig]
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.models = models
        self.stages: dict[str, Stage] = {}
        for name, group in settings.groups.items():
            self.stages[name] = self._group_stage(group)
        self.plans: dict[str, Plan] = {}
        for name, group in settings.groups.items():
            self.plans[name] = self._plan(name, name, group.fallbacks, group.fallback_on)
        for alias, target in settings.aliases.items():
            plan = self.plans.get(target) or self._direct(target)
            if plan is not None:
                self.plans[alias] = plan
        self._wildcards: dict[str, Plan | None] = {}

    def plan(self, model: str) -> Plan | None:
        """The plan for a requested name, or None when the router does not route it."""
        plan = self.plans.get(model)
        if plan is not None:
            return plan
        if not self.settings.routes:
            return None
        if model in self._wildcards:
            return self._wildcards[model]
        plan = self._wildcard(model)
        if len(self._wildcards) >= _WILDCARD_CACHE:
            self._wildcards.clear()
        self._wildcards[model] = plan
        return plan

    def _direct(self, name: str) -> Plan | None:
        """The plan of an alias target that is a [[models]] entry or a wildcard match."""
        if name in self.models:
            return Plan(name, (self._stage(name),), frozenset())
        return self._wildcard(name)

    def _wildcard(self, model: str) -> Plan | None:
        for route in self.settings.routes:
            if fnmatch.fnmatchcase(model, route.match):
                provider = self.providers[route.provider]
                target = _target(provider, ModelConfig(model, route.provider, model))
                first = Stage(model, (target,), self.settings.strategy)
                return self._plan(model, first, route.fallbacks, route.fallback_on)
        return None

    def _plan(self, model: str, first: str | Stage, fallbacks: tuple[str, ...],
              fallback_on: frozenset[str]) -> Plan:
        head = self._stage(first) if isinstance(first, str) else first
        return Plan(model, (head, *(self._stage(name) for name in fallbacks)), fallback_on)

    def _stage(self, name: str) -> Stage:
        """A group's stage, or a [[models]] entry as a one-deployment stage."""
        stage = self.stages.get(name)
        if stage is None:
            entry = self.models[name]
            stage = Stage(name, (_target(self.providers[entry.provider], entry),), "ordered")
            self.stages[name] = stage
        return stage

    def _group_stage(self, group: Group) -> Stage:
        targets = []
        for i, deployment in enumerate(group.deployments):
            provider = self.providers[deployment.provider]
            entry = ModelConfig(
                group.name, deployment.provider, deployment.upstream_model, group.owned_by, group.created,
                dict(deployment.options or {}),
            )
            try:
                provider.check_model(entry)
            except ConfigError as exc:
                raise ConfigError(f"{WHERE}.groups.{group.name}.deployments[{i}]: {exc}") from None
            targets.append(_target(provider, entry, deployment.weight))
        return Stage(group.name, tuple(targets), group.strategy or self.settings.strategy)


def _target(provider: Provider, entry: ModelConfig, weight: float = 1.0) -> Target:
    return Target(f"{provider.name}/{entry.upstream_model}", provider, Route(provider, entry.upstream_model, entry),
                  weight)
