"""compatgate-prometheus: Prometheus metrics for a compatgate gateway.

Configure ``[plugins.prometheus]`` to activate it; mount ``metrics_app(gateway)`` in the host
app, or set ``path`` to serve the metrics under the gateway. See the README for the metrics.
"""

from .exposition import MetricsEndpoint
from .metrics import GatewayMetrics
from .plugin import Prometheus, metrics_app
from .settings import PrometheusSettings, parse_settings

__all__ = [
    "GatewayMetrics",
    "MetricsEndpoint",
    "Prometheus",
    "PrometheusSettings",
    "metrics_app",
    "parse_settings",
]
