"""The rows the store reads and writes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from ..keys import key_hint

__all__ = ["BalanceError", "CreditEntry", "KeyRecord", "KeyState", "LedgerEntry"]

KeyState = Literal["active", "disabled", "expired", "deleted"]


class BalanceError(Exception):
    """A balance change that would take the available balance below zero."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One virtual key. ``balance_micro`` is what is left of the credits (budget, top-ups,
    adjustments) after the settled charges; ``reserved_micro`` is held by requests in flight,
    so ``balance_micro - reserved_micro`` is what new requests may reserve."""

    id: str
    name: str | None
    owner: str | None
    status: Literal["active", "disabled", "deleted"]
    created_ms: int
    updated_ms: int
    expires_ms: int | None
    allowed_models: tuple[str, ...] | None
    metadata: dict[str, Any]
    unlimited: bool
    credited_micro: int
    balance_micro: int
    reserved_micro: int
    spent_micro: int
    secret_hash: str | None = field(default=None, repr=False)

    COLUMNS = (
        "id, name, owner, status, created_ms, updated_ms, expires_ms, allowed_models, metadata, "
        "unlimited, credited_micro, balance_micro, reserved_micro, spent_micro, secret_hash"
    )

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> KeyRecord:
        models = json.loads(row[7]) if row[7] is not None else None
        return cls(
            row[0],
            row[1],
            row[2],
            row[3],
            int(row[4]),
            int(row[5]),
            int(row[6]) if row[6] is not None else None,
            tuple(models) if models is not None else None,
            json.loads(row[8]),
            bool(row[9]),
            int(row[10]),
            int(row[11]),
            int(row[12]),
            int(row[13]),
            row[14],
        )

    def state(self, now_ms: int) -> KeyState:
        if self.status != "active":
            return self.status
        if self.expires_ms is not None and now_ms >= self.expires_ms:
            return "expired"
        return "active"

    @property
    def available_micro(self) -> int:
        return self.balance_micro - self.reserved_micro

    def to_json(self, now_ms: int) -> dict[str, Any]:
        """The key as the admin API and ``--json`` show it: never the secret nor its digest."""
        return {
            "id": self.id,
            "object": "billing.key",
            "key_hint": key_hint(self.id),
            "name": self.name,
            "owner": self.owner,
            "status": self.state(now_ms),
            "created_at": self.created_ms // 1000,
            "expires_at": self.expires_ms // 1000 if self.expires_ms is not None else None,
            "allowed_models": list(self.allowed_models)
            if self.allowed_models is not None
            else None,
            "metadata": self.metadata,
            "unlimited": self.unlimited,
            "credited_micro": self.credited_micro,
            "spent_micro": self.spent_micro,
            "balance_micro": self.balance_micro,
            "reserved_micro": self.reserved_micro,
            "available_micro": self.available_micro,
        }


@dataclass(frozen=True, slots=True)
class CreditEntry:
    """A change of a key's credit: its initial ``budget``, a ``topup`` or an ``adjustment``."""

    id: int
    key_id: str
    kind: str
    amount_micro: int
    balance_after_micro: int
    note: str | None
    created_ms: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "billing.credit",
            "key_id": self.key_id,
            "kind": self.kind,
            "amount_micro": self.amount_micro,
            "balance_after_micro": self.balance_after_micro,
            "note": self.note,
            "created_at": self.created_ms // 1000,
        }


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One finished request of a virtual key, as the writer settles it. ``id`` is unique per
    request handled (a write retried with the same id adds nothing); ``request_id`` is the
    gateway's ``x-request-id``; ``cost_micro`` is what the usage is worth at the configured
    prices (for a ``cached`` answer: that times ``cache_hit_fraction``). The request's
    reservation, if it made one, has the same ``id``."""

    id: str
    request_id: str
    created_ms: int
    key_id: str
    endpoint: str
    model: str
    provider: str | None
    upstream_model: str | None
    status: Literal["ok", "error", "aborted"]
    status_code: int
    streamed: bool
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    estimated: bool
    cost_micro: int
    latency_ms: int
    ttft_ms: int | None
    error: str | None
    finish_reason: str | None = None  # the answer's finish reasons, comma-separated
    prompt: str | None = None  # the request's messages/prompt/input (JSON), when log_prompts
    cached: bool = False  # served from a cache (billed at cache_hit_fraction of its cost)

    def values(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.request_id,
            self.created_ms,
            self.key_id,
            self.endpoint,
            self.model,
            self.provider,
            self.upstream_model,
            self.status,
            self.status_code,
            self.streamed,
            self.prompt_tokens,
            self.completion_tokens,
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.estimated,
            self.cost_micro,
            self.latency_ms,
            self.ttft_ms,
            self.error,
            self.finish_reason,
            self.prompt,
            self.cached,
        )

    COLUMNS = (
        "id, request_id, created_ms, key_id, endpoint, model, provider, upstream_model, status, "
        "status_code, streamed, prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, "
        "reasoning_tokens, estimated, cost_micro, latency_ms, ttft_ms, error, finish_reason, prompt, cached"
    )
