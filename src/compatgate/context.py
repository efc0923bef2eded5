"""What the hooks receive about one request: who asked, for which model, and where it goes."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .metering import Meter

if TYPE_CHECKING:
    from starlette.requests import Request

    from .config import ModelConfig
    from .gateway import Gateway
    from .metering import Units
    from .operations import Operation
    from .provider import Provider
    from .usage import Attempt

__all__ = ["Principal", "RequestContext", "Route"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, as an `authenticate` hook returns it.

    ``key_id`` names the key without revealing it (never the secret itself).
    ``allowed_models`` holds glob patterns (``"gpt-4o*"``); ``None`` allows every model.
    ``metadata`` is free-form (owner, tier, budget id...) for other plugins to read.
    """

    key_id: str
    allowed_models: tuple[str, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def allows(self, model: str) -> bool:
        if self.allowed_models is None:
            return True
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.allowed_models)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes, as a `route_model` hook returns it.

    ``provider`` serves the request with ``upstream_model`` as the model name upstream;
    ``model`` is the configured model entry when there is one.
    """

    provider: Provider
    upstream_model: str
    model: ModelConfig | None = None


class RequestContext:
    """One request on its way through the gateway.

    ``operation`` is the row of the operation table it runs (`compatgate.operations`) and
    ``endpoint`` its name (``"chat.completions"``, ``"responses"``, ``"messages"``...: see
    docs/endpoints.md for every one); ``stream`` and ``include_usage`` say whether the client
    asked for a stream and for its final usage chunk; ``body`` is the decoded body as the client
    sent it until the `transform_request` hooks replace it; ``sent`` is the body as it goes
    upstream (``model`` replaced by the upstream model; for an operation served through its
    conversion's pivot — then ``converted`` is True — the pivot request, e.g. a chat request),
    set before `admit_request`; ``local`` says that the operation is answered by the gateway
    itself (its ``local`` answer: no upstream call); ``units`` is what the request
    may cost at most, measured on ``sent`` (see `compatgate.metering.Units`): billing and rate
    limits reserve against it; ``output_cap`` is the output limit configured for the model (its
    ``max_output_tokens``, else ``[gateway] default_max_output_tokens``), None without one;
    ``state`` is scratch space that plugins share between their hooks
    for this one request (key it by plugin name); ``response_headers`` are headers a provider
    adds to the client's response (e.g. the upstream's rate limits translated), after those of
    the `response_headers` hooks; ``attempts`` lists the upstream calls made so far; ``cache``
    says what a cache did with the request (``"hit"``, ``"miss"``, ``"bypass"``, None without
    a cache).
    """

    __slots__ = (
        "gateway",
        "request_id",
        "endpoint",
        "operation",
        "request",
        "body",
        "sent",
        "converted",
        "local",
        "_units",
        "output_cap",
        "cache",
        "model",
        "stream",
        "include_usage",
        "principal",
        "route",
        "state",
        "response_headers",
        "attempts",
        "started",
        "first_token_at",
    )

    def __init__(
        self, gateway: Gateway, request_id: str, endpoint: str, request: Request,
        operation: Operation | None = None,
    ) -> None:
        self.gateway = gateway
        self.request_id = request_id
        self.endpoint = endpoint
        self.operation = operation
        self.request = request
        self.body: dict[str, Any] = {}
        self.sent: dict[str, Any] = {}
        self.converted = False
        self.local = False
        self._units: Units | None = None
        self.output_cap: int | None = None
        self.cache: str | None = None
        self.model: str = ""
        self.stream: bool = False
        self.include_usage: bool = False
        self.principal: Principal | None = None
        self.route: Route | None = None
        self.state: dict[str, Any] = {}
        self.response_headers: dict[str, str] = {}
        self.attempts: list[Attempt] = []
        self.started = time.perf_counter()
        self.first_token_at: float | None = None

    @property
    def upstream_method(self) -> str:
        """The `Provider` method that sends the request upstream: its conversion's (usually
        ``"chat_completions"``) when it is ``converted``, else its operation's (``""`` outside
        one)."""
        operation = self.operation
        if operation is None:
            return ""
        if self.converted and operation.via is not None:
            return operation.via.method
        return operation.method

    @property
    def units(self) -> Units | None:
        """What the request may cost at most, measured on ``sent`` with `meter` (the first time
        it is read: a request nothing reserves for is never measured); None before ``sent``."""
        if self._units is None and self.sent:
            self._units = self.meter.measure(self.sent, self.output_cap)
        return self._units

    @units.setter
    def units(self, units: Units | None) -> None:
        self._units = units

    @property
    def meter(self) -> Meter:
        """The meter of what this request sends upstream: its operation's, or its conversion's
        (Chat Completions' for most) when it is ``converted``."""
        operation = self.operation
        if operation is None:
            return Meter()
        if self.converted and operation.via is not None:
            return operation.via.meter
        return operation.meter

    def cap_output(self, limit: int) -> None:
        """Limit the output of a request that carries no cap (``units.output_tokens`` None) to
        ``limit`` tokens per choice: written into ``sent`` the way its upstream reads it, and
        counted in ``units``. For an `admit_request` hook that reserves against a default, so
        that what it reserved and what the upstream may produce cannot diverge."""
        units = self.units
        if units is None or units.output_tokens is not None:
            return
        self.meter.cap(self.sent, limit)
        n = self.sent.get("n")
        choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 1
        self.units = replace(units, output_tokens=limit * choices)

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def __repr__(self) -> str:
        return f"<RequestContext {self.request_id} {self.endpoint} model={self.model!r}>"
