"""The CLI: ``compatgate keys ...``, ``compatgate balance add``, ``compatgate usage``.

Each command reads ``--config`` (default ``$COMPATGATE_CONFIG`` or ``compatgate.toml``), opens
the store it configures (creating or migrating the schema), does one thing and prints it: a
table for people, or JSON with ``--json``. A key's secret is printed once, by ``keys create``
and ``keys rotate``. Exit status 0, 1 when the key does not exist or the operation is refused,
2 for a configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from compatgate import ConfigError, load_config

from .manage import KeyManager, KeyNotFound, KeySpec, OperationError, parse_amount, parse_time
from .pricing import format_micro
from .settings import PLUGIN_NAME, parse_settings
from .store import GROUPS, TOTAL_FIELDS, KeyRecord, now_ms, store_for

__all__ = ["add_commands"]

Operation = Callable[[KeyManager, argparse.Namespace], Awaitable[int | None]]


def add_commands(add_command: Callable[..., argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default=os.environ.get("COMPATGATE_CONFIG", "compatgate.toml"),
        help="TOML configuration with a [plugins.billing] table (default: $COMPATGATE_CONFIG or ./compatgate.toml)",
    )
    common.add_argument("--json", action="store_true", help="print JSON")

    keys = add_command("keys", help="manage billing API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser(
        "create", parents=[common], help="create a key (its secret is printed once)"
    )
    create.add_argument("--name")
    create.add_argument("--owner")
    create.add_argument(
        "--expires", help="2026-12-31, 2026-12-31T18:00:00Z, Unix seconds, or 30d / 12h from now"
    )
    create.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="GLOB",
        help="allow this model (glob pattern; repeat; default: every model)",
    )
    create.add_argument("--budget", help="prepaid budget in currency units (default: unlimited)")
    create.add_argument("--metadata", help='JSON object, e.g. \'{"ratelimit": {"rpm": 100}}\'')
    create.set_defaults(run=_runner(_create))
    listing = keys.add_parser("list", parents=[common], help="list keys")
    listing.add_argument("--owner")
    listing.add_argument("--all", action="store_true", help="include deleted keys")
    listing.set_defaults(run=_runner(_list))
    for name, text, operation in (
        ("show", "show a key and its latest credit entries", _show),
        ("disable", "disable a key (401 until enabled)", _status(False)),
        ("enable", "enable a disabled key", _status(True)),
        ("rotate", "give a key a new secret (printed once); the old one stops working", _rotate),
        ("delete", "delete a key for good (its ledger stays)", _delete),
    ):
        command = keys.add_parser(name, parents=[common], help=text)
        command.add_argument("key_id")
        command.set_defaults(run=_runner(operation))

    balance = add_command("balance", help="change a key's balance").add_subparsers(
        dest="balance_command", required=True
    )
    add = balance.add_parser(
        "add", parents=[common], help="top up a key (recorded as a credit entry)"
    )
    add.add_argument("key_id")
    add.add_argument("amount", help="currency units, e.g. 25 or 0.50 (negative with --adjustment)")
    add.add_argument("--note")
    add.add_argument(
        "--adjustment", action="store_true", help="a correction, which may be negative"
    )
    add.set_defaults(run=_runner(_balance_add))

    usage = add_command(
        "usage", parents=[common], help="usage totals from the ledger (CSV or JSON)"
    )
    usage.add_argument(
        "--by",
        default="key,model,day",
        help=f"comma-separated, of {', '.join(GROUPS)} (default: all)",
    )
    usage.add_argument("--since", help="from (2026-01-01, Unix seconds, or 7d ago)")
    usage.add_argument("--until", help="to, excluded (same forms)")
    usage.add_argument("--key", help="only this key id")
    usage.add_argument("--format", choices=["csv", "json"], default="csv")
    usage.set_defaults(run=_runner(_usage))


def _runner(operation: Operation) -> Callable[[argparse.Namespace], int | None]:
    def run(args: argparse.Namespace) -> int | None:
        config = load_config(args.config)
        settings = parse_settings(config)
        if settings is None:
            raise ConfigError(
                f"{config.source}: no [plugins.{PLUGIN_NAME}] table: billing is not configured"
            )
        try:
            return asyncio.run(_with_store(settings, operation, args))
        except (KeyNotFound, OperationError) as exc:
            print(f"compatgate: {exc}", file=sys.stderr)
            return 1

    return run


async def _with_store(settings: Any, operation: Operation, args: argparse.Namespace) -> int | None:
    store = store_for(settings)
    await store.open()
    try:
        return await operation(KeyManager(store, settings.secret), args)
    finally:
        await store.close()


# -- operations -------------------------------------------------------------------------------


async def _create(manager: KeyManager, args: argparse.Namespace) -> None:
    try:
        metadata = json.loads(args.metadata) if args.metadata else {}
    except json.JSONDecodeError as exc:
        raise OperationError(f"--metadata is not JSON: {exc}") from None
    spec = KeySpec.build(
        name=args.name,
        owner=args.owner,
        expires_ms=parse_time(args.expires) if args.expires else None,
        allowed_models=args.models,
        budget_micro=parse_amount(args.budget, "--budget") if args.budget is not None else None,
        metadata=metadata,
    )
    key, secret = await manager.create(spec)
    _print_key(key, args, secret=secret)


async def _list(manager: KeyManager, args: argparse.Namespace) -> None:
    keys = await manager.store.list_keys(owner=args.owner, include_deleted=args.all)
    now = now_ms()
    if args.json:
        print(json.dumps([key.to_json(now) for key in keys], indent=2))
        return
    rows = [["ID", "NAME", "OWNER", "STATUS", "AVAILABLE", "SPENT", "EXPIRES"]]
    for key in keys:
        data = key.to_json(now)
        rows.append(
            [
                key.id,
                key.name or "",
                key.owner or "",
                data["status"],
                "unlimited" if key.unlimited else format_micro(key.available_micro),
                format_micro(key.spent_micro),
                _date(key.expires_ms),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


async def _show(manager: KeyManager, args: argparse.Namespace) -> None:
    key = await manager.get(args.key_id)
    credits = await manager.store.credits(key.id, limit=10)
    if args.json:
        print(
            json.dumps(
                {**key.to_json(now_ms()), "credits": [c.to_json() for c in credits]}, indent=2
            )
        )
        return
    _print_key(key, args)
    for entry in credits:
        print(
            f"  {_date(entry.created_ms)}  {entry.kind:<10} {format_micro(entry.amount_micro):>16}  "
            f"balance {format_micro(entry.balance_after_micro)}  {entry.note or ''}".rstrip()
        )


def _status(enabled: bool) -> Operation:
    async def change(manager: KeyManager, args: argparse.Namespace) -> None:
        _print_key(await manager.set_enabled(args.key_id, enabled), args)

    return change


async def _rotate(manager: KeyManager, args: argparse.Namespace) -> None:
    key, secret = await manager.rotate(args.key_id)
    _print_key(key, args, secret=secret)


async def _delete(manager: KeyManager, args: argparse.Namespace) -> None:
    _print_key(await manager.delete(args.key_id), args)


async def _balance_add(manager: KeyManager, args: argparse.Namespace) -> None:
    key, entry = await manager.add_balance(
        args.key_id, parse_amount(args.amount), adjustment=args.adjustment, note=args.note
    )
    if args.json:
        print(json.dumps({"key": key.to_json(now_ms()), "credit": entry.to_json()}, indent=2))
        return
    print(f"{entry.kind} of {format_micro(entry.amount_micro)} recorded (credit entry {entry.id})")
    _print_key(key, args)


async def _usage(manager: KeyManager, args: argparse.Namespace) -> None:
    group_by = [g.strip() for g in args.by.split(",") if g.strip()]
    if any(g not in GROUPS for g in group_by):
        raise OperationError(f"--by takes a comma-separated list of {', '.join(GROUPS)}")
    totals = await manager.store.usage_totals(
        group_by,
        since_ms=parse_time(args.since, past=True) if args.since else None,
        until_ms=parse_time(args.until, past=True) if args.until else None,
        key_id=args.key,
    )
    if args.json or args.format == "json":
        print(json.dumps(totals, indent=2))
        return
    names = [("key_id" if g == "key" else g) for g in group_by]
    writer = csv.DictWriter(sys.stdout, fieldnames=[*names, *TOTAL_FIELDS], lineterminator="\n")
    writer.writeheader()
    writer.writerows(totals)


# -- printing ---------------------------------------------------------------------------------


def _print_key(key: KeyRecord, args: argparse.Namespace, *, secret: str | None = None) -> None:
    data = key.to_json(now_ms())
    if args.json:
        print(json.dumps({**data, "secret": secret} if secret else data, indent=2))
        return
    fields = [
        ("id", key.id),
        ("name", key.name or ""),
        ("owner", key.owner or ""),
        ("status", data["status"]),
        ("expires", _date(key.expires_ms) or "never"),
        ("models", ", ".join(key.allowed_models) if key.allowed_models is not None else "all"),
        (
            "budget",
            "unlimited" if key.unlimited else f"{format_micro(key.credited_micro)} credited",
        ),
        ("balance", format_micro(key.balance_micro)),
        ("reserved", format_micro(key.reserved_micro)),
        ("spent", format_micro(key.spent_micro)),
        ("metadata", json.dumps(key.metadata, sort_keys=True)),
    ]
    for name, value in fields:
        print(f"{name + ':':<10}{value}")
    if secret:
        print(f"{'key:':<10}{secret}")
        print("compatgate: store this key now: it is not shown again", file=sys.stderr)


def _date(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
