"""compatgate-billing: virtual API keys, model allow-lists, prepaid budgets that never
overspend, and a durable usage ledger, on SQLite or PostgreSQL.

Enable it with a ``[plugins.billing]`` table (see the README); the entry point ``billing``
names `Billing`, which compatgate instantiates once per gateway.
"""

from __future__ import annotations

from .keys import KEY_PREFIX, KeyPrincipal
from .manage import KeyManager, KeyNotFound, KeySpec, OperationError
from .plugin import Billing
from .pricing import Price, PriceTable
from .settings import BillingSettings, parse_settings
from .store import KeyRecord, LedgerEntry, Store, store_for
from .writer import LedgerWriter

__all__ = [
    "KEY_PREFIX",
    "Billing",
    "BillingSettings",
    "KeyManager",
    "KeyNotFound",
    "KeyPrincipal",
    "KeyRecord",
    "KeySpec",
    "LedgerEntry",
    "LedgerWriter",
    "OperationError",
    "Price",
    "PriceTable",
    "Store",
    "parse_settings",
    "store_for",
]
