"""compatgate-otel: OpenTelemetry traces of a compatgate gateway, following the GenAI semantic
conventions: a span per API request, a child span per upstream attempt, the trace continued
from the incoming ``traceparent`` and passed on to the upstream. See the README.
"""

from .plugin import Tracing
from .settings import TracingSettings, load_tracer_provider, parse_settings

__all__ = ["Tracing", "TracingSettings", "load_tracer_provider", "parse_settings"]
