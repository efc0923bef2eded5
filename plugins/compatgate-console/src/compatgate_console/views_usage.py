"""Usage pages: the operators' overview (requests, tokens, spend and error rate over the last
hour, day or 30 days, by model, key or provider), a key holder's own page, and their data as
JSON."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from compatgate_billing.keys import KeyPrincipal

from .auth import console_of, guard
from .examples import ENV_VAR, examples
from .series import RANGES, Range, Usage, build_usage

__all__ = ["key_usage_data", "my_key", "my_usage_data", "overview", "range_of", "usage_data"]

DIMENSIONS = {"model": "Model", "key": "Key", "provider": "Provider"}
SUMMARY_ROWS = 50


def range_of(request: Request, default: str = "day") -> Range:
    return RANGES.get(request.query_params.get("range", default), RANGES[default])


def _by(request: Request, default: str | None = "model") -> str | None:
    by = request.query_params.get("by", default or "")
    return by if by in DIMENSIONS else default


async def usage_of(request: Request, range_: Range, by: str | None, key_id: str | None = None) -> Usage:
    cache = await console_of(request).series()
    start, buckets = await cache.buckets(range_, by=by, key_id=key_id)
    return build_usage(range_, start, buckets, by)


async def key_labels(request: Request, key_ids: list[str]) -> dict[str, str]:
    """``id → "name (id)"`` of the keys shown (names are the operator's, never secrets)."""
    store = await console_of(request).store()
    labels = {}
    for key_id in key_ids[:SUMMARY_ROWS]:
        key = await store.get_key(key_id)
        labels[key_id] = f"{key.name} ({key_id})" if key is not None and key.name else key_id
    return labels


def charts(usage: Usage, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return [
        usage.chart("requests", "Requests", "requests", labels),
        usage.chart("tokens", "Tokens", "tokens", labels),
        usage.chart("spend", "Spend", "currency units", labels),
        {"title": "Error rate", "unit": "%", "t": usage.times,
         "series": [{"label": "errors %", "values": usage.totals["error_rate"]}]},
    ]


def usage_json(usage: Usage, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "range": usage.range.name,
        "bucket_seconds": usage.range.bucket_ms // 1000,
        "by": usage.by,
        "t": usage.times,
        "totals": usage.totals,
        "groups": usage.by_group,
        "summary": usage.summary[:SUMMARY_ROWS],
        "total": usage.total,
        "labels": labels or {},
    }


@guard("operator")
async def overview(request: Request) -> Response:
    range_, by = range_of(request), _by(request)
    usage = await usage_of(request, range_, by)
    labels = await key_labels(request, [row["group"] for row in usage.summary]) if by == "key" else {}
    return console_of(request).render(request, "overview.html", {
        "usage": usage, "charts": charts(usage, labels), "labels": labels, "ranges": RANGES,
        "dimensions": DIMENSIONS, "summary": usage.summary[:SUMMARY_ROWS], "nav": "overview",
    })


@guard("operator", data=True)
async def usage_data(request: Request) -> Response:
    range_, by = range_of(request), _by(request, None)
    usage = await usage_of(request, range_, by)
    labels = await key_labels(request, [row["group"] for row in usage.summary]) if by == "key" else {}
    return JSONResponse(usage_json(usage, labels))


@guard("operator", data=True)
async def key_usage_data(request: Request) -> Response:
    store = await console_of(request).store()
    key = await store.get_key(request.path_params["key_id"])
    if key is None:
        return JSONResponse({"error": {"message": "No such key.", "status": 404}}, status_code=404)
    usage = await usage_of(request, range_of(request, "month"), _by(request, None), key.id)
    return JSONResponse(usage_json(usage))


@guard("any", data=True)
async def my_usage_data(request: Request) -> Response:
    session = request.state.session
    if session.operator:
        return JSONResponse({"error": {"message": "Operators have no key of their own.", "status": 404}},
                            status_code=404)
    usage = await usage_of(request, range_of(request, "month"), _by(request, None), session.key_id)
    return JSONResponse(usage_json(usage))


async def allowed_models(request: Request, key: Any) -> list[str]:
    """The model names ``key`` may use, as its ``GET /models`` would list them."""
    gateway = console_of(request).gateway
    principal = KeyPrincipal(key.id, key.allowed_models, key.metadata, unlimited=key.unlimited)
    return [entry["id"] for entry in await gateway.list_models(principal)]


async def example_context(request: Request, key: Any) -> dict[str, Any]:
    models = await allowed_models(request, key)
    base = console_of(request).api_base_url(request)
    return {"models": models, "base_url": base, "env_var": ENV_VAR,
            "examples": examples(base, models[0]) if models else []}


@guard("any")
async def my_key(request: Request) -> Response:
    session = request.state.session
    console = console_of(request)
    if session.operator:
        return console.render(request, "error.html", {"message": "Operators have no key of their own."},
                              status=404)
    store = await console.store()
    key = await store.get_key(session.key_id)
    range_ = range_of(request, "month")
    usage = await usage_of(request, range_, "model", session.key_id)
    reports = await console.reports()
    from compatgate_billing.reports import LogFilter

    recent = await reports.log(LogFilter(key_id=session.key_id), limit=10)
    return console.render(request, "me.html", {
        "key": key, "usage": usage, "charts": charts(usage)[:3], "ranges": RANGES, "recent": recent,
        "nav": "me", "now": console.now(), **await example_context(request, key),
    })
