"""compatgate-router: model groups and aliases, load balancing, fallbacks, retries and cooldowns.

One public model name maps to several deployments (provider + upstream model + weight) chosen
by weight, by fewest requests in flight or by lowest recent latency; a failing group falls back
to others; failed tries are retried with exponential backoff and jitter (honouring a short
``Retry-After``), never on a client error and never once a byte of the answer went to the
client; a deployment that keeps failing is skipped for a while, then probed, with the state
shared between replicas through Redis when configured. Configure ``[plugins.router]``; see the
README.
"""

from .failures import backoff, reason, retry_after
from .fallback import ATTEMPTS_HEADER, PROVIDER_HEADER, FallbackCall
from .health import ALLOWED, Admission, CircuitState, Health, MemoryHealth
from .plan import Plan, Planner, Stage, Target
from .plugin import Router
from .redis_health import RedisHealth
from .selection import Stats, order
from .settings import (
    DEPLOYMENT_FAILURES,
    REASONS,
    STRATEGIES,
    CooldownPolicy,
    Deployment,
    Group,
    RetryPolicy,
    RouterSettings,
    WildcardRoute,
    parse_settings,
)
from .streams import PeekedStream, WatchedBytes, peek

__all__ = [
    "ALLOWED",
    "ATTEMPTS_HEADER",
    "DEPLOYMENT_FAILURES",
    "PROVIDER_HEADER",
    "REASONS",
    "STRATEGIES",
    "Admission",
    "CircuitState",
    "CooldownPolicy",
    "Deployment",
    "FallbackCall",
    "Group",
    "Health",
    "MemoryHealth",
    "PeekedStream",
    "Plan",
    "Planner",
    "RedisHealth",
    "RetryPolicy",
    "Router",
    "RouterSettings",
    "Stage",
    "Stats",
    "Target",
    "WatchedBytes",
    "WildcardRoute",
    "backoff",
    "order",
    "peek",
    "parse_settings",
    "reason",
    "retry_after",
]
