"""Serving the metrics: the ASGI app the host mounts (`metrics_app`), or a route under the gateway.

A scrape renders the gateway's own registry; in multi-process mode it aggregates the files of
every process instead, keeping only this gateway's namespace. Rendering runs in a worker
thread so that a scrape never stalls the requests the event loop is serving.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import TYPE_CHECKING

import anyio.to_thread
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from .metrics import GatewayMetrics

__all__ = ["MetricsEndpoint"]

class MetricsEndpoint:
    """``GET`` (or ``HEAD``) the metrics in the Prometheus text format, or OpenMetrics when the
    scraper asks for it; 401 without the token when one is set."""

    def __init__(self, metrics: GatewayMetrics, token: str | None = None) -> None:
        self.metrics = metrics
        self._token = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        if request.method not in ("GET", "HEAD"):
            response = Response("Method not allowed; use GET.\n", 405, headers={"allow": "GET, HEAD"})
        elif self._token is not None and not hmac.compare_digest(
            request.headers.get("authorization", "").encode("latin-1"), self._token
        ):
            response = Response(
                "A valid bearer token is required.\n", 401, headers={"www-authenticate": "Bearer"}
            )
        else:
            encoder, content_type = choose_encoder(request.headers.get("accept", ""))
            body = await anyio.to_thread.run_sync(encoder, self._collector())
            response = Response(body if request.method == "GET" else b"", 200, media_type=content_type)
        await response(scope, receive, send)

    def _collector(self) -> Collector:
        metrics = self.metrics
        if metrics.multiprocess_dir is None:
            return metrics.registry
        return _Namespaced(metrics.multiprocess_dir, metrics.settings.namespace)


class _Namespaced(Collector):
    """The metrics of every process in a multi-process directory, within one namespace."""

    def __init__(self, directory: str, namespace: str) -> None:
        self._collector = MultiProcessCollector(None, path=directory)  # registers nowhere
        self._prefix = f"{namespace}_"

    def collect(self) -> Iterator[Metric]:
        for metric in self._collector.collect():
            if metric.name.startswith(self._prefix):
                yield metric
