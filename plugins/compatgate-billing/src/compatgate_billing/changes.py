"""Changing an existing key and finding keys: what the admin console needs beyond
`KeyManager` (create, rotate, enable, disable, delete, top up).

- `KeyChanges` and `update_key`: a key's name, owner, expiry, allowed models and metadata (the
  rate limits other plugins read from ``metadata["ratelimit"]``), in one statement; they take
  effect on the key's next request (authentication reads those columns every time).
- `set_budget`: give an unlimited key a budget (its balance becomes that amount, recorded as a
  ``budget`` credit entry), or make a key unlimited (``None``). A key with a budget changes
  its balance with top-ups and adjustments (`KeyManager.add_balance`).
- `search_keys`: keys whose id, name or owner contains a text, newest first, a page at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .manage import KeyNotFound, KeySpec, OperationError
from .store import KeyRecord, Store, now_ms

__all__ = ["UNCHANGED", "KeyChanges", "search_keys", "set_budget", "update_key"]


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()


@dataclass(frozen=True)
class KeyChanges:
    """What to change on a key; a field left `UNCHANGED` stays as it is. ``expires_ms`` None
    removes the expiry, ``allowed_models`` None allows every model."""

    name: str | None = UNCHANGED
    owner: str | None = UNCHANGED
    expires_ms: int | None = UNCHANGED
    allowed_models: tuple[str, ...] | None = UNCHANGED
    metadata: dict[str, Any] = UNCHANGED

    def assignments(self) -> list[tuple[str, Any]]:
        """``(column, stored value)`` of each field that changes, checked like a new key's."""
        given = {
            name: getattr(self, name)
            for name in ("name", "owner", "expires_ms", "allowed_models", "metadata")
            if getattr(self, name) is not UNCHANGED
        }
        spec = KeySpec.build(
            name=given.get("name"),
            owner=given.get("owner"),
            allowed_models=given.get("allowed_models"),
            metadata=given.get("metadata"),
        )
        columns: list[tuple[str, Any]] = []
        for name in given:
            if name == "expires_ms":
                value = given[name]
                if value is not None and not isinstance(value, int):
                    raise OperationError("expires_ms must be Unix milliseconds or None")
                columns.append(("expires_ms", value))
            elif name == "allowed_models":
                models = spec.allowed_models
                columns.append(("allowed_models", _json(list(models)) if models is not None else None))
            elif name == "metadata":
                columns.append(("metadata", _json(spec.metadata)))
            else:
                columns.append((name, getattr(spec, name)))
        return columns


async def update_key(store: Store, key_id: str, changes: KeyChanges) -> KeyRecord:
    """Apply ``changes`` to a key that is not deleted (`KeyNotFound` otherwise)."""
    columns = changes.assignments()
    if not columns:
        key = await store.get_key(key_id)
        if key is None or key.status == "deleted":
            raise KeyNotFound(f"no key {key_id!r} (or it is deleted)")
        return key
    sets = ", ".join(f"{column} = ${i}" for i, (column, _) in enumerate(columns, start=2))
    n = len(columns) + 2
    row = await store.db.writer.fetchrow(
        f"UPDATE billing_keys SET {sets}, updated_ms = ${n} WHERE id = $1 AND status <> 'deleted' "
        f"RETURNING {KeyRecord.COLUMNS}",
        key_id,
        *(value for _, value in columns),
        now_ms(),
    )
    if row is None:
        raise KeyNotFound(f"no key {key_id!r} (or it is deleted)")
    return KeyRecord.from_row(row)


async def set_budget(store: Store, key_id: str, budget_micro: int | None, note: str | None = None) -> KeyRecord:
    """Give an unlimited key a budget of ``budget_micro`` (its balance becomes that amount, a
    ``budget`` credit entry records the change), or make the key unlimited with None. A key
    that has a budget already changes it with top-ups and adjustments: `OperationError`."""
    if budget_micro is not None and budget_micro < 0:
        raise OperationError("a budget must not be negative")
    now = now_ms()
    async with store.db.transaction() as tx:
        row = await tx.fetchrow(
            f"SELECT {KeyRecord.COLUMNS} FROM billing_keys WHERE id = $1 {store.db.for_update}", key_id
        )
        key = KeyRecord.from_row(row) if row is not None else None
        if key is None or key.status == "deleted":
            raise KeyNotFound(f"no key {key_id!r} (or it is deleted)")
        if budget_micro is None:
            await tx.execute(
                "UPDATE billing_keys SET unlimited = TRUE, updated_ms = $2 WHERE id = $1", key_id, now
            )
        else:
            if not key.unlimited:
                raise OperationError(
                    f"key {key_id} has a budget already: add credit or make an adjustment instead"
                )
            change = budget_micro - key.balance_micro
            await tx.execute(
                "UPDATE billing_keys SET unlimited = FALSE, balance_micro = balance_micro + $2, "
                "credited_micro = credited_micro + $2, updated_ms = $3 WHERE id = $1",
                key_id,
                change,
                now,
            )
            await tx.execute(
                "INSERT INTO billing_credits (key_id, kind, amount_micro, balance_after_micro, note, created_ms) "
                "VALUES ($1, 'budget', $2, $3, $4, $5)",
                key_id,
                change,
                budget_micro,
                note,
                now,
            )
        row = await tx.fetchrow(f"SELECT {KeyRecord.COLUMNS} FROM billing_keys WHERE id = $1", key_id)
    assert row is not None
    return KeyRecord.from_row(row)


async def search_keys(
    store: Store,
    text: str = "",
    *,
    include_deleted: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> list[KeyRecord]:
    """Keys whose id, name or owner contains ``text`` (any case), newest first."""
    clauses, args = [], []
    if text.strip():
        pattern = "%" + text.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        args.append(pattern)
        clauses.append(
            "(id LIKE $1 ESCAPE '\\' OR LOWER(COALESCE(name, '')) LIKE $1 ESCAPE '\\' "
            "OR LOWER(COALESCE(owner, '')) LIKE $1 ESCAPE '\\')"
        )
    if not include_deleted:
        clauses.append("status <> 'deleted'")
    args += [max(1, min(limit, 1000)), max(0, offset)]
    rows = await store.db.reader.fetch(
        f"SELECT {KeyRecord.COLUMNS} FROM billing_keys "
        f"{'WHERE ' + ' AND '.join(clauses) if clauses else ''} "
        f"ORDER BY created_ms DESC, id DESC LIMIT ${len(args) - 1} OFFSET ${len(args)}",
        *args,
    )
    return [KeyRecord.from_row(row) for row in rows]


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), sort_keys=True)
