"""What a purge deletes, as the admin API and the CLI both read it: ``key`` (a key id: that
key's namespace), ``team`` (a team's namespace), ``model`` (a client-facing model name), or
``all``; ``key``/``team`` and ``model`` combine (that namespace's entries of that model)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["PurgeError", "Target", "parse_target"]


class PurgeError(ValueError):
    """A purge request that says nothing clear."""


@dataclass(frozen=True, slots=True)
class Target:
    namespace: str | None
    model: str | None

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "model": self.model}


def parse_target(given: Mapping[str, Any]) -> Target:
    """The target of ``{"key": ..., "team": ..., "model": ..., "all": true}``."""
    unknown = sorted(set(given) - {"key", "team", "model", "all"})
    if unknown:
        raise PurgeError(f"unknown field {unknown[0]!r} (purge by key, team, model, or all)")
    for name in ("key", "team", "model"):
        value = given.get(name)
        if value is not None and (not isinstance(value, str) or not value):
            raise PurgeError(f"{name} must be a non-empty string")
    key, team, model = given.get("key"), given.get("team"), given.get("model")
    everything = given.get("all")
    if everything not in (None, True, False):
        raise PurgeError("all must be true or false")
    if key is not None and team is not None:
        raise PurgeError("give key or team, not both")
    if everything is True and (key or team or model):
        raise PurgeError("all cannot be combined with key, team or model")
    if everything is not True and not (key or team or model):
        raise PurgeError('say what to purge: {"key": ID}, {"team": NAME}, {"model": NAME} or {"all": true}')
    namespace = f"k:{key}" if key is not None else f"t:{team}" if team is not None else None
    return Target(namespace, model)
