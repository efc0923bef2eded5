"""`Billing`: the compatgate plugin (entry point ``billing``), one instance per gateway.

Hooks, in the order a request meets them:

- `authenticate` accepts ``sk-cg-<id>-<secret>`` keys (one lookup by id, a constant-time digest
  comparison) and returns None for every other key, so the static ``[gateway] api_keys`` keep
  working; a disabled or expired key is refused with 401.
- `admit_request` reserves the worst case the request can cost (see `Billing.admit_request`)
  or refuses it with 429 ``insufficient_quota``.
- `record_usage` prices what the request really used and queues the ledger entry; the
  `LedgerWriter` settles it (charges the cost, releases the reservation) off the response path.

`startup` opens the store and starts the writer and the maintenance task (renewing this
process's reservations, deleting expired ones of processes that died); `shutdown` writes what
is queued, gives back this process's reservations and closes the store. Without a
``[plugins.billing]`` table the plugin does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from compatgate import (
    AuthenticationError,
    InsufficientQuotaError,
    PermissionDeniedError,
    Principal,
    RequestContext,
    Units,
    UsageRecord,
    hookimpl,
    withdraw_hooks,
)
from compatgate.usage import estimate_prompt_tokens

from .keys import KeyPrincipal, parse_key, verify
from .manage import KeyManager
from .pricing import format_micro
from .prompts import prompt_text
from .settings import BillingSettings, parse_settings
from .store import LedgerEntry, Store, now_ms, store_for
from .writer import LedgerWriter

if TYPE_CHECKING:
    from argparse import ArgumentParser

    from starlette.routing import BaseRoute

    from compatgate import Gateway

__all__ = ["STATE_KEY", "Billing", "Pending"]

logger = logging.getLogger("compatgate.billing")

STATE_KEY = "billing"
_SWEEP_ON_REFUSAL_EVERY = 1.0  # seconds: at most one extra sweep per second when money is short
_PRINCIPALS_KEPT = 10_000  # parsed principals remembered (by their stored columns), at most


@dataclass
class Pending:
    """What billing notes about one request in ``ctx.state["billing"]``: the id of its ledger
    entry (and of its reservation) and the amount reserved."""

    id: str
    reserved: int = 0


class Billing:
    """Virtual keys, budgets and the usage ledger for one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings: BillingSettings | None = parse_settings(gateway.config)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.store: Store | None = None
        self.keys: KeyManager | None = None
        self.writer: LedgerWriter | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._last_sweep = 0.0
        # ids of ledger entries and reservations: random per process (64 bits) + a counter,
        # unique like a UUID4's hex (32 hex digits) without a system call per request
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count(1)
        # key id -> (the stored allowed_models, metadata and unlimited, the principal made of
        # them): the JSON is parsed again only when those columns change. This caches no
        # authentication: every request still reads the key's row and checks its digest.
        self._principals: dict[str, tuple[tuple[Any, ...], KeyPrincipal]] = {}
        if self.settings is None:  # inert at no cost
            withdraw_hooks(self, "startup", "shutdown", "authenticate", "admit_request", "record_usage",
                           "register_routes", "check_ready")  # fmt: skip

    @property
    def enabled(self) -> bool:
        return self.settings is not None

    # -- life cycle ---------------------------------------------------------------------------

    @hookimpl
    async def startup(self) -> None:
        if self.settings is None:
            return
        store = store_for(self.settings)
        await store.open()
        self.store = store
        self.keys = KeyManager(store, self.settings.secret)
        self.writer = LedgerWriter(
            store, queue_size=self.settings.queue_size, linger=self.settings.batch_seconds
        )
        self.writer.start()
        self._maintenance = asyncio.create_task(
            self._maintain(), name="compatgate-billing-maintenance"
        )
        logger.info(
            "compatgate-billing: %s store open (process %s)", self.settings.dialect, self.owner
        )

    @hookimpl
    async def shutdown(self) -> None:
        if self.store is None:
            return
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
            self._maintenance = None
        if self.writer is not None:
            await self.writer.close()
        try:
            released = await self.store.release_owner(self.owner)
            if released:
                logger.info(
                    "compatgate-billing: released %d reservations of unfinished requests", released
                )
        finally:
            store, self.store = self.store, None
            await store.close()

    @hookimpl
    async def check_ready(self) -> dict[str, str | None] | None:
        """``billing``: the store is open, its database answers a query, and the ledger writer
        runs (without them no virtual key can be checked nor any usage recorded)."""
        if self.settings is None:
            return None
        if self.store is None:
            return {STATE_KEY: "store not open"}
        try:
            await self.store.get_key("0" * 16)  # a lookup like every request's; no such key
        except Exception as exc:  # the details (host, DSN) go to the log only
            logger.warning("compatgate-billing: not ready: the database failed (%s: %s)", type(exc).__name__, exc)
            return {STATE_KEY: f"database unreachable ({type(exc).__name__})"}
        if self.writer is None or not self.writer.running:
            return {STATE_KEY: "ledger writer stopped"}
        return {STATE_KEY: None}

    async def _maintain(self) -> None:
        assert self.settings is not None and self.store is not None
        ttl = self.settings.reservation_ttl
        interval = min(max(ttl / 3, 0.2), 30.0)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.store.renew(self.owner, int(ttl * 1000))
                swept = await self.store.sweep()
                if swept:
                    logger.info("compatgate-billing: released %d expired reservations", swept)
            except Exception as exc:  # the database is away: try again next round
                logger.warning(
                    "compatgate-billing: reservation upkeep failed: %s", type(exc).__name__
                )

    # -- requests -----------------------------------------------------------------------------

    @hookimpl
    async def authenticate(self, api_key: str | None) -> Principal | None:
        if self.store is None or api_key is None:
            return None
        parsed = parse_key(api_key)
        if parsed is None:
            return None  # not one of ours: the next plugin (static keys) decides
        assert self.settings is not None
        key_id, secret = parsed
        row = await self.store.auth_row(key_id)  # every request: rotation, disabling, deletion
        stored = row[0] if row is not None else None  # and expiry take effect at once
        matches = verify(self.settings.secret, key_id, secret, stored)
        if row is None or not matches:  # (a digest is computed either way)
            return None
        status = row[1]
        if status == "disabled":
            raise AuthenticationError("This API key has been disabled.")
        if status == "active" and row[2] is not None and now_ms() >= row[2]:
            raise AuthenticationError("This API key has expired.")
        columns = row[3:6]
        cached = self._principals.get(key_id)
        if cached is not None and cached[0] == columns:
            return cached[1]
        models = json.loads(columns[0]) if columns[0] is not None else None
        principal = KeyPrincipal(
            key_id,
            tuple(models) if models is not None else None,
            json.loads(columns[1]),
            unlimited=bool(columns[2]),
        )
        if len(self._principals) >= _PRINCIPALS_KEPT:
            self._principals.clear()
        self._principals[key_id] = (columns, principal)
        return principal

    @hookimpl
    async def admit_request(self, ctx: RequestContext) -> None:
        """Reserve the worst case of what the gateway measured on the request as it goes
        upstream (``ctx.units``): the prompt estimate at the dearest input rate, the output cap
        it carries at the output rate (else the price's or the plugin's ``max_tokens`` for each
        choice), its images, audio seconds and characters; 429 when the key's free balance
        cannot cover it."""
        principal = ctx.principal
        if self.settings is None or not isinstance(principal, KeyPrincipal):
            return
        pending = self._pending(ctx)
        price = self.settings.prices.lookup(ctx.model)
        if price is None:
            if self.settings.unpriced == "refuse":
                raise PermissionDeniedError(
                    f"The model '{ctx.model}' has no price configured, so it cannot be billed to this API key.",
                    code="model_not_priced",
                    param="model",
                )
            return
        if principal.unlimited:
            return
        units = ctx.units or Units(estimate_prompt_tokens(ctx.body), None)
        choices = ctx.sent.get("n") if isinstance(ctx.sent.get("n"), int) else 1
        amount = price.worst_case(units, (price.max_tokens or self.settings.max_tokens) * max(choices, 1))
        if amount <= 0:
            return
        if not await self._reserve(pending.id, principal.key_id, amount):
            raise InsufficientQuotaError(
                "You exceeded your current quota: the balance left on this API key cannot cover this "
                f"request (it may cost up to {format_micro(amount)}). Add credit to the key, or lower max_tokens."
            )
        pending.reserved = amount

    async def _reserve(self, reservation_id: str, key_id: str, amount: int) -> bool:
        assert self.store is not None and self.settings is not None
        ttl_ms = int(self.settings.reservation_ttl * 1000)
        if await self.store.reserve(reservation_id, key_id, amount, self.owner, ttl_ms):
            return True
        if time.monotonic() - self._last_sweep < _SWEEP_ON_REFUSAL_EVERY:
            return False
        self._last_sweep = time.monotonic()  # money may be held by a dead process: free it, retry
        if not await self.store.sweep():
            return False
        return await self.store.reserve(reservation_id, key_id, amount, self.owner, ttl_ms)

    @hookimpl
    async def record_usage(self, ctx: RequestContext, record: UsageRecord) -> None:
        if self.settings is None or not isinstance(ctx.principal, KeyPrincipal):
            return
        entry = self._entry(self._pending(ctx), ctx.principal.key_id, record)
        if self.gateway.config.gateway.log_prompts:  # the request log may show the prompt
            entry = replace(entry, prompt=prompt_text(ctx.body))
        if self.writer is not None and self.writer.running:
            await self.writer.submit(entry)
        elif self.store is not None:  # shutting down: write it now rather than lose it
            await self.store.settle([entry])
        else:
            logger.error(
                "compatgate-billing: the store is closed; request %s not recorded",
                record.request_id,
            )

    def _pending(self, ctx: RequestContext) -> Pending:
        pending = ctx.state.get(STATE_KEY)
        if not isinstance(pending, Pending):
            pending = ctx.state[STATE_KEY] = Pending(f"{self._id_prefix}{next(self._ids):016x}")
        return pending

    def _entry(self, pending: Pending, key_id: str, record: UsageRecord) -> LedgerEntry:
        assert self.settings is not None
        usage = record.usage
        price = self.settings.prices.lookup(record.model)
        ttft = record.time_to_first_token_ms
        return LedgerEntry(
            id=pending.id,
            request_id=record.request_id,
            created_ms=now_ms(),
            key_id=key_id,
            endpoint=record.endpoint,
            model=record.model,
            provider=record.provider,
            upstream_model=record.upstream_model,
            status=record.outcome,
            status_code=record.status_code,
            streamed=record.streamed,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cached_tokens=(usage.cached_tokens or 0) if usage else 0,
            cache_write_tokens=(usage.cache_write_tokens or 0) if usage else 0,
            reasoning_tokens=(usage.reasoning_tokens or 0) if usage else 0,
            estimated=bool(usage and usage.estimated),
            cost_micro=price.cost(usage, record.units) if price is not None else 0,
            latency_ms=round(record.latency_ms),
            ttft_ms=round(ttft) if ttft is not None else None,
            error=record.error,
            finish_reason=",".join(dict.fromkeys(record.finish_reasons))[:200] or None,
        )

    # -- operating it -------------------------------------------------------------------------

    @hookimpl
    def register_routes(self, register: Callable[[BaseRoute], None]) -> None:
        if self.settings is None or self.settings.admin_key is None:
            return
        from .admin import admin_routes

        for route in admin_routes(self):
            register(route)

    @staticmethod
    @hookimpl
    def register_commands(add_command: Callable[..., ArgumentParser]) -> None:
        from .commands import add_commands

        add_commands(add_command)

    def __repr__(self) -> str:
        return f"<Billing {self.settings.dialect if self.settings else 'off'} owner={self.owner}>"
