"""Keys: a searchable list; creating a key (its secret shown once, with a copy button);
rotating, disabling, enabling and revoking it; setting its name, owner, expiry, allowed models,
rate limits (``metadata["ratelimit"]``, read by compatgate-ratelimit) and budget; its balance,
spend chart, credit history and request examples. Everything goes through billing's public
objects (`KeyManager`, `compatgate_billing.changes`)."""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from compatgate_billing import KeyNotFound, KeySpec, OperationError
from compatgate_billing.changes import KeyChanges, search_keys, set_budget, update_key
from compatgate_billing.manage import parse_amount, parse_time

from .auth import console_of, guard
from .views_usage import RANGES, charts, example_context, range_of, usage_of

__all__ = ["create_key", "key_action", "key_list", "key_page", "new_key"]

LIMITS = ("rpm", "tpm", "tpd", "concurrency")
PAGE = 50


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


def _models(form: FormData) -> tuple[str, ...] | None:
    text = _text(form, "allowed_models")
    return tuple(m for m in re.split(r"[\s,]+", text) if m) if text else None


def _expiry(form: FormData) -> int | None:
    text = _text(form, "expires")
    return parse_time(text) if text else None


def _ratelimit(form: FormData, metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` with ``ratelimit`` from the form's tier and limits (removed when empty)."""
    limits: dict[str, Any] = {}
    tier = _text(form, "tier")
    if tier:
        limits["tier"] = tier
    for name in LIMITS:
        text = _text(form, name)
        if text:
            if not text.isdigit() or int(text) <= 0:
                raise OperationError(f"{name} must be a positive whole number (or empty: no limit of its own)")
            limits[name] = int(text)
    changed = {k: v for k, v in metadata.items() if k != "ratelimit"}
    if limits:
        changed["ratelimit"] = limits
    return changed


@guard("operator")
async def key_list(request: Request) -> Response:
    console = console_of(request)
    query = request.query_params.get("q", "")
    deleted = request.query_params.get("deleted") == "1"
    try:
        page = max(0, int(request.query_params.get("page", "0")))
    except ValueError:
        page = 0
    keys = await search_keys(await console.store(), query, include_deleted=deleted, limit=PAGE + 1,
                             offset=page * PAGE)
    return console.render(request, "keys.html", {
        "keys": keys[:PAGE], "q": query, "deleted": deleted, "page": page, "more": len(keys) > PAGE,
        "now": console.now(), "nav": "keys",
    })


@guard("operator")
async def new_key(request: Request) -> Response:
    return console_of(request).render(request, "key_new.html", {"error": None, "form": {}, "nav": "keys"})


@guard("operator")
async def create_key(request: Request) -> Response:
    console = console_of(request)
    form = await request.form()
    try:
        budget = _text(form, "budget")
        spec = KeySpec.build(
            name=_text(form, "name"), owner=_text(form, "owner"), expires_ms=_expiry(form),
            allowed_models=_models(form), budget_micro=parse_amount(budget, "budget") if budget else None,
            metadata=_ratelimit(form, {}),
        )
        key, secret = await console.billing.keys.create(spec)  # type: ignore[union-attr]
    except OperationError as exc:
        values = {k: v for k, v in form.items() if k != "csrf" and isinstance(v, str)}
        return console.render(request, "key_new.html", {"error": str(exc), "form": values, "nav": "keys"},
                              status=400)
    return _secret_page(request, key, secret, created=True)


def _secret_page(request: Request, key: Any, secret: str, *, created: bool) -> Response:
    """The one page that shows a key's secret: never cached, never shown again."""
    return console_of(request).render(request, "key_secret.html", {
        "key": key, "secret": secret, "created": created, "nav": "keys"})


@guard("operator")
async def key_page(request: Request) -> Response:
    console = console_of(request)
    store = await console.store()
    key = await store.get_key(request.path_params["key_id"])
    if key is None:
        return console.render(request, "error.html", {"message": "No such key."}, status=404)
    return await _render_key(request, key, None)


async def _render_key(request: Request, key: Any, error: str | None, status: int = 200) -> Response:
    console = console_of(request)
    store = await console.store()
    range_ = range_of(request, "month")
    usage = await usage_of(request, range_, "model", key.id)
    ratelimit = key.metadata.get("ratelimit")
    return console.render(request, "key.html", {
        "key": key, "credits": await store.credits(key.id, 20), "usage": usage,
        "charts": charts(usage)[:3], "ranges": RANGES, "error": error, "now": console.now(),
        "limits": ratelimit if isinstance(ratelimit, dict) else {}, "limit_names": LIMITS,
        "effective": _effective_limits(request, key), "nav": "keys",
        **await example_context(request, key),
    }, status=status)


def _effective_limits(request: Request, key: Any) -> dict[str, Any] | None:
    """The limits compatgate-ratelimit applies to the key (None when it is not configured)."""
    limiter = console_of(request).gateway.state.get("ratelimit")
    settings = getattr(limiter, "settings", None)
    if settings is None:
        return None
    from compatgate_billing.keys import KeyPrincipal
    from compatgate_ratelimit import key_limits

    limits, _ = key_limits(settings, KeyPrincipal(key.id, key.allowed_models, key.metadata))
    return {name: getattr(limits, name) for name in LIMITS}


@guard("operator")
async def key_action(request: Request) -> Response:
    console = console_of(request)
    store = await console.store()
    manager = console.billing.keys
    assert manager is not None
    key_id, action = request.path_params["key_id"], request.path_params["action"]
    form = await request.form()
    try:
        if action == "rotate":
            key, secret = await manager.rotate(key_id)
            return _secret_page(request, key, secret, created=False)
        if action in ("disable", "enable"):
            await manager.set_enabled(key_id, action == "enable")
        elif action == "revoke":
            await manager.delete(key_id)
        elif action == "update":
            current = await manager.get(key_id, deleted=False)
            await update_key(store, key_id, KeyChanges(
                name=_text(form, "name"), owner=_text(form, "owner"), expires_ms=_expiry(form),
                allowed_models=_models(form), metadata=_ratelimit(form, current.metadata)))
        elif action == "budget":
            amount = _text(form, "budget")
            await set_budget(store, key_id, parse_amount(amount, "budget") if amount else None,
                             _text(form, "note"))
        elif action == "balance":
            amount = _text(form, "amount")
            if amount is None:
                raise OperationError("enter an amount")
            await manager.add_balance(key_id, parse_amount(amount), adjustment=form.get("adjustment") == "1",
                                      note=_text(form, "note"))
        else:
            return console.render(request, "error.html", {"message": "No such action."}, status=404)
    except KeyNotFound:
        return console.render(request, "error.html", {"message": "No such key (or it was revoked)."}, status=404)
    except OperationError as exc:
        key = await store.get_key(key_id)
        if key is None:
            return console.render(request, "error.html", {"message": "No such key."}, status=404)
        return await _render_key(request, key, str(exc), 400)
    return RedirectResponse(request.url_for("key", key_id=key_id).path, status_code=303)
