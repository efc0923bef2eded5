"""Default plugin: the gateway's own part of ``GET /health/ready``.

``gateway``: its providers are started (the start-up ran and the gateway is not shutting down).
``response_store``: with ``[gateway] response_store = "postgres"``, the database answers a
query (the SQLite file is local and opened on first use, so it is not probed).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..hookspecs import hookimpl
from ..responses.store import open_store

if TYPE_CHECKING:
    from ..gateway import Gateway

logger = logging.getLogger("compatgate.health")


@hookimpl(trylast=True)
async def check_ready(gateway: Gateway) -> dict[str, str | None]:
    checks: dict[str, str | None] = {"gateway": None if gateway.started else "not started"}
    if gateway.config.gateway.response_store == "postgres":
        try:
            store = await open_store(gateway)
            if store is not None:
                await store.load("resp_readiness_probe", None)
            checks["response_store"] = None
        except Exception as exc:  # the details (host, DSN) go to the log, not to the probe
            logger.warning("the response store is unreachable: %s", type(exc).__name__)
            checks["response_store"] = f"unreachable ({type(exc).__name__})"
    return checks
