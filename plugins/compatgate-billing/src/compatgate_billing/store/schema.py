"""The database schema, as numbered migrations per dialect.

``billing_schema`` holds the version applied. `migrations` lists, for version 1, 2, ..., the
statements that bring the previous version to it; the store applies the missing ones in one
transaction under a lock, so replicas starting together migrate once. Every amount is a
``BIGINT`` of micro-units and every time a ``BIGINT`` of Unix milliseconds: no floats.

``billing_keys.reserved_micro`` always equals the sum of the key's rows in
``billing_reservations``: triggers keep it so on every insert and delete, in the statement
that inserts or deletes, whoever runs it (a request, a settlement, a sweep of expired rows).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["SCHEMA_VERSION", "VERSION_TABLE", "migrations"]

VERSION_TABLE = "billing_schema"

_TABLES = """
CREATE TABLE billing_keys (
    id TEXT PRIMARY KEY,
    secret_hash TEXT,
    name TEXT,
    owner TEXT,
    status TEXT NOT NULL CHECK (status IN ('active', 'disabled', 'deleted')),
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    expires_ms BIGINT,
    allowed_models TEXT,
    metadata TEXT NOT NULL,
    unlimited BOOLEAN NOT NULL,
    credited_micro BIGINT NOT NULL DEFAULT 0,
    balance_micro BIGINT NOT NULL DEFAULT 0,
    reserved_micro BIGINT NOT NULL DEFAULT 0 CHECK (reserved_micro >= 0),
    spent_micro BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX billing_keys_owner ON billing_keys (owner);
CREATE TABLE billing_credits (
    id {serial} PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES billing_keys (id),
    kind TEXT NOT NULL CHECK (kind IN ('budget', 'topup', 'adjustment')),
    amount_micro BIGINT NOT NULL,
    balance_after_micro BIGINT NOT NULL,
    note TEXT,
    created_ms BIGINT NOT NULL
);
CREATE INDEX billing_credits_key ON billing_credits (key_id, id);
CREATE TABLE billing_reservations (
    id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES billing_keys (id),
    amount_micro BIGINT NOT NULL CHECK (amount_micro > 0),
    owner TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX billing_reservations_expiry ON billing_reservations (expires_ms);
CREATE INDEX billing_reservations_owner ON billing_reservations (owner);
CREATE TABLE billing_usage (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT,
    upstream_model TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'error', 'aborted')),
    status_code INTEGER NOT NULL,
    streamed BOOLEAN NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    estimated BOOLEAN NOT NULL,
    cost_micro BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttft_ms BIGINT,
    error TEXT,
    reserved_micro BIGINT NOT NULL DEFAULT 0,
    charged_micro BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX billing_usage_key_time ON billing_usage (key_id, created_ms);
CREATE INDEX billing_usage_time ON billing_usage (created_ms);
CREATE INDEX billing_usage_request ON billing_usage (request_id)
"""

_SQLITE_TRIGGERS = [
    """CREATE TRIGGER billing_reservation_added AFTER INSERT ON billing_reservations
    BEGIN
        UPDATE billing_keys SET reserved_micro = reserved_micro + NEW.amount_micro WHERE id = NEW.key_id;
    END""",
    """CREATE TRIGGER billing_reservation_removed AFTER DELETE ON billing_reservations
    BEGIN
        UPDATE billing_keys SET reserved_micro = reserved_micro - OLD.amount_micro WHERE id = OLD.key_id;
    END""",
]

_POSTGRES_TRIGGERS = [
    """CREATE FUNCTION billing_reservation_counter() RETURNS trigger
    LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE billing_keys SET reserved_micro = reserved_micro + NEW.amount_micro WHERE id = NEW.key_id;
            RETURN NEW;
        END IF;
        UPDATE billing_keys SET reserved_micro = reserved_micro - OLD.amount_micro WHERE id = OLD.key_id;
        RETURN OLD;
    END
    $$""",
    """CREATE TRIGGER billing_reservation_counter AFTER INSERT OR DELETE ON billing_reservations
    FOR EACH ROW EXECUTE FUNCTION billing_reservation_counter()""",
]


# Version 2: what the request log shows (the finish reason; the prompt, only when the gateway's
# ``log_prompts`` is on) and the indexes of its filters (by model, by outcome, newest first).
_VERSION_2 = """
ALTER TABLE billing_usage ADD COLUMN finish_reason TEXT;
ALTER TABLE billing_usage ADD COLUMN prompt TEXT;
CREATE INDEX billing_usage_model_time ON billing_usage (model, created_ms);
CREATE INDEX billing_usage_status_time ON billing_usage (status, created_ms)
"""


def _statements(script: str) -> list[str]:
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def migrations(dialect: Literal["sqlite", "postgresql"]) -> list[list[str]]:
    """The statements of each schema version, in order (index 0 is version 1)."""
    if dialect == "sqlite":
        version_1 = _statements(_TABLES.format(serial="INTEGER")) + _SQLITE_TRIGGERS
    else:
        version_1 = _statements(_TABLES.format(serial="BIGSERIAL")) + _POSTGRES_TRIGGERS
    # 3: whether a ledger row's answer came from a cache (compatgate-cache: UsageRecord.cached)
    false = "0" if dialect == "sqlite" else "FALSE"
    version_3 = [f"ALTER TABLE billing_usage ADD COLUMN cached BOOLEAN NOT NULL DEFAULT {false}"]
    return [version_1, _statements(_VERSION_2), version_3]


SCHEMA_VERSION = len(migrations("sqlite"))
