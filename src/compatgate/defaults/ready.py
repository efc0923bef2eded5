"""Default plugin: the gateway's own part of ``GET /health/ready``.

``gateway``: its providers are started (the start-up ran and the gateway is not shutting down).
(The response store's check is the Responses plugin's, `compatgate.defaults.responses`.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from ..gateway import Gateway


@hookimpl(trylast=True)
async def check_ready(gateway: Gateway) -> dict[str, str | None]:
    return {"gateway": None if gateway.started else "not started"}
