"""Key and balance operations, shared by the CLI and the admin API.

`KeyManager.create` and `KeyManager.rotate` are the only places a secret exists: it is made,
digested for storage and returned once to the caller; nothing else ever sees it again.
"""

from __future__ import annotations

import math

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from .keys import digest, format_key, new_key_id, new_secret
from .pricing import MAX_AMOUNT, MICRO, to_micro
from .store import BalanceError, CreditEntry, KeyRecord, Store, now_ms

__all__ = [
    "KeyManager",
    "KeyNotFound",
    "KeySpec",
    "OperationError",
    "parse_amount",
    "parse_time",
]

_RELATIVE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class KeyNotFound(LookupError):
    """No such key (or it was deleted)."""


class OperationError(ValueError):
    """The request is well formed but cannot be carried out (or a field is invalid)."""


_LATEST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: later times are refused


def parse_time(value: Any, *, past: bool = False) -> int:
    """A point in time in Unix milliseconds: Unix seconds (a number), an ISO 8601 date or date
    and time (UTC unless it says), or a duration (``30d``, ``12h``) from now, or before now with
    ``past``; between 1970 and 9999 (OperationError otherwise)."""
    moment = _parse_time(value, past)
    if not 0 <= moment <= _LATEST_MS:
        raise OperationError("a time must lie between 1970-01-01 and 9999-12-31")
    return moment


def _parse_time(value: Any, past: bool) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _seconds(value)
    if not isinstance(value, str) or not value.strip():
        raise OperationError("a time must be Unix seconds, an ISO 8601 date or a duration like 30d")
    text = value.strip()
    try:
        return _seconds(float(text))  # Unix seconds given as text (a query string, the CLI)
    except ValueError:
        pass
    match = _RELATIVE.fullmatch(text)
    if match:
        offset = min(int(match.group(1)) * _UNITS[match.group(2)] * 1000, _LATEST_MS + 1)
        return now_ms() - offset if past else now_ms() + offset
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise OperationError(
                f"{text!r} is not a time (use 2026-12-31, 2026-12-31T18:00:00Z or 30d)"
            ) from None
        moment = datetime(day.year, day.month, day.day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _seconds(value: float) -> int:
    if not math.isfinite(value) or abs(value) > _LATEST_MS / 1000:
        raise OperationError("a time must lie between 1970-01-01 and 9999-12-31")
    return int(value * 1000)


def parse_amount(value: Any, what: str = "amount") -> int:
    """An amount in currency units (a number or a decimal string) as micro-units, at most
    `MAX_AMOUNT` either way."""
    try:
        micro = to_micro(value)
    except ValueError as exc:
        raise OperationError(f"{what} {exc}") from None
    if abs(micro) > MAX_AMOUNT:
        raise OperationError(f"{what} is too large (at most {MAX_AMOUNT // MICRO} currency units)")
    return micro


@dataclass(frozen=True)
class KeySpec:
    """What a new key gets. ``budget_micro`` None makes an unlimited key."""

    name: str | None = None
    owner: str | None = None
    expires_ms: int | None = None
    allowed_models: tuple[str, ...] | None = None
    budget_micro: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> KeySpec:
        """Read the admin API's JSON body: ``name``, ``owner``, ``expires_at``, ``allowed_models``,
        ``budget`` (currency units), ``metadata``; OperationError names a wrong field."""
        if not isinstance(data, Mapping):
            raise OperationError("the body must be a JSON object")
        allowed = {"name", "owner", "expires_at", "allowed_models", "budget", "metadata"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise OperationError(
                f"unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
            )
        expires = data.get("expires_at")
        budget = data.get("budget")
        return cls.build(
            name=data.get("name"),
            owner=data.get("owner"),
            expires_ms=parse_time(expires) if expires is not None else None,
            allowed_models=data.get("allowed_models"),
            budget_micro=parse_amount(budget, "budget") if budget is not None else None,
            metadata=data.get("metadata", {}),
        )

    @classmethod
    def build(
        cls,
        *,
        name: Any = None,
        owner: Any = None,
        expires_ms: int | None = None,
        allowed_models: Any = None,
        budget_micro: int | None = None,
        metadata: Any = None,
    ) -> KeySpec:
        for label, text in (("name", name), ("owner", owner)):
            if text is not None and (not isinstance(text, str) or len(text) > 200):
                raise OperationError(f"{label} must be a string of at most 200 characters")
        if allowed_models is not None and (
            not isinstance(allowed_models, list | tuple)
            or not all(isinstance(m, str) and m for m in allowed_models)
        ):
            raise OperationError("allowed_models must be a list of model names or glob patterns")
        if budget_micro is not None and budget_micro < 0:
            raise OperationError("budget must not be negative")
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, Mapping):
            raise OperationError("metadata must be a JSON object")
        return cls(
            name,
            owner,
            expires_ms,
            tuple(allowed_models) if allowed_models is not None else None,
            budget_micro,
            dict(metadata),
        )


class KeyManager:
    """Creates and changes keys in a `Store`, digesting secrets under the server secret."""

    def __init__(self, store: Store, server_secret: bytes) -> None:
        self.store = store
        self._server_secret = server_secret

    async def create(self, spec: KeySpec) -> tuple[KeyRecord, str]:
        """A new key and its full secret form (``sk-cg-<id>-<secret>``), shown this once."""
        key_id, secret = new_key_id(), new_secret()
        now = now_ms()
        record = KeyRecord(
            id=key_id,
            name=spec.name,
            owner=spec.owner,
            status="active",
            created_ms=now,
            updated_ms=now,
            expires_ms=spec.expires_ms,
            allowed_models=spec.allowed_models,
            metadata=spec.metadata,
            unlimited=spec.budget_micro is None,
            credited_micro=0,
            balance_micro=0,
            reserved_micro=0,
            spent_micro=0,
        )
        created = await self.store.create_key(
            record, digest(self._server_secret, key_id, secret), spec.budget_micro
        )
        return created, format_key(key_id, secret)

    async def get(self, key_id: str, *, deleted: bool = True) -> KeyRecord:
        key = await self.store.get_key(key_id)
        if key is None or (key.status == "deleted" and not deleted):
            raise KeyNotFound(f"no key {key_id!r}")
        return key

    async def rotate(self, key_id: str) -> tuple[KeyRecord, str]:
        """A new secret for the key (same id, balance and history); the old one stops working."""
        secret = new_secret()
        key = await self.store.set_secret_hash(key_id, digest(self._server_secret, key_id, secret))
        if key is None:
            raise KeyNotFound(f"no key {key_id!r} (or it is deleted)")
        return key, format_key(key_id, secret)

    async def set_enabled(self, key_id: str, enabled: bool) -> KeyRecord:
        key = await self.store.set_status(key_id, "active" if enabled else "disabled")
        if key is None:
            raise KeyNotFound(f"no key {key_id!r} (or it is deleted)")
        return key

    async def delete(self, key_id: str) -> KeyRecord:
        key = await self.store.delete_key(key_id)
        if key is None:
            raise KeyNotFound(f"no key {key_id!r} (or it is already deleted)")
        return key

    async def add_balance(
        self, key_id: str, amount_micro: int, *, adjustment: bool = False, note: str | None = None
    ) -> tuple[KeyRecord, CreditEntry]:
        """A top-up (positive) or, with ``adjustment``, a correction either way."""
        if amount_micro == 0 or (amount_micro < 0 and not adjustment):
            raise OperationError("a top-up must be positive (use an adjustment to take money off)")
        key = await self.get(key_id, deleted=False)
        if key.unlimited:
            raise OperationError(f"key {key_id} has no budget (it was created unlimited)")
        try:
            return await self.store.add_credit(
                key_id, amount_micro, "adjustment" if adjustment else "topup", note
            )
        except KeyError:
            raise KeyNotFound(f"no key {key_id!r} (or it is deleted)") from None
        except BalanceError as exc:
            raise OperationError(str(exc)) from None
