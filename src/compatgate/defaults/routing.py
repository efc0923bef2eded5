"""Default plugin: route each model of the ``[[models]]`` table to its provider."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..context import Route
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from ..gateway import Gateway


@hookimpl(trylast=True)
def route_model(gateway: Gateway, model: str) -> Route | None:
    entry = gateway.models.get(model)
    if entry is None:
        return None
    return Route(gateway.providers[entry.provider], entry.upstream_model, entry)


@hookimpl(trylast=True)
def list_models(gateway: Gateway) -> list[dict[str, Any]]:
    return [
        {
            "id": model.name,
            "object": "model",
            "created": model.created,
            "owned_by": model.owned_by or gateway.providers[model.provider].owned_by,
        }
        for model in gateway.models.values()
    ]
