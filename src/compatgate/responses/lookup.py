"""``GET`` and ``DELETE /responses/{id}``: the responses the gateway stored, for the key that
created them (any other key gets a 404, as for an id that never existed)."""

from __future__ import annotations

import orjson

from ..context import RequestContext
from ..endpoints import LocalEndpoint
from ..exceptions import InvalidRequestError, NotFoundError
from .store import open_store

__all__ = ["StoredResponseEndpoint"]


class StoredResponseEndpoint(LocalEndpoint):
    name = "responses"
    methods = ("GET", "DELETE")

    async def answer(self, ctx: RequestContext) -> bytes:
        store = await open_store(self.gateway)
        if store is None:
            raise InvalidRequestError(
                "The gateway does not store responses (gateway.response_store = \"off\").",
                code="storage_disabled",
            )
        wanted = ctx.request.path_params["response_id"]
        key_id = ctx.principal.key_id if ctx.principal else None
        if ctx.request.method == "DELETE":
            if await store.delete(wanted, key_id):
                return orjson.dumps({"id": wanted, "object": "response", "deleted": True})
        else:
            entry = await store.load(wanted, key_id)
            if entry is not None:
                return orjson.dumps(entry[0])
        raise NotFoundError(f"Response with id '{wanted}' not found.", param="response_id")
