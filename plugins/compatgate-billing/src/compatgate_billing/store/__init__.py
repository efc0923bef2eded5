"""Where billing keeps its state: SQLite (default) or PostgreSQL, same tables and behaviour."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .models import BalanceError, CreditEntry, KeyRecord, KeyState, LedgerEntry
from .store import AUTH_COLUMNS, Store, StoreError, now_ms
from .totals import GROUPS, TOTAL_FIELDS

if TYPE_CHECKING:
    from ..settings import BillingSettings

__all__ = [
    "AUTH_COLUMNS",
    "GROUPS",
    "TOTAL_FIELDS",
    "BalanceError",
    "CreditEntry",
    "KeyRecord",
    "KeyState",
    "LedgerEntry",
    "Store",
    "StoreError",
    "now_ms",
    "store_for",
]


def store_for(settings: BillingSettings) -> Store:
    """The (not yet opened) store that ``settings`` configure."""
    if settings.dialect == "postgresql":
        from .postgres import PostgresDatabase

        assert settings.dsn is not None
        return Store(
            PostgresDatabase(settings.dsn, schema=settings.schema, pool_size=settings.pool_size)
        )
    from .sqlite import SQLiteDatabase

    assert settings.sqlite_path is not None
    return Store(SQLiteDatabase(settings.sqlite_path))
