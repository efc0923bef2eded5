"""The request log: time, key, model, provider, status, tokens, cost, latency, time to first
token, finish reason and request id, newest first, filtered by key, model, status and time,
a page at a time; as CSV and JSON too. Prompts appear only when the gateway's ``log_prompts``
is on (billing records them only then). Key holders get the same views of their own key only:
their key is taken from the session, never from the query."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from compatgate_billing import OperationError
from compatgate_billing.manage import parse_time
from compatgate_billing.pricing import format_micro
from compatgate_billing.reports import STATUSES, LogFilter, LogRow

from .auth import console_of, guard
from .formats import when

__all__ = ["log_csv", "log_data", "log_page", "my_log_csv", "my_log_data", "my_log_page"]

CSV_COLUMNS = (
    "time", "request_id", "key_id", "endpoint", "model", "provider", "status", "status_code",
    "prompt_tokens", "completion_tokens", "total_tokens", "cost", "charged", "latency_ms",
    "ttft_ms", "finish_reason", "error",
)


class BadFilter(ValueError):
    pass


def _filters(request: Request, key_id: str | None) -> tuple[LogFilter, dict[str, str]]:
    """The filter of the query string; a key holder's ``key_id`` replaces any ``key`` asked."""
    query = request.query_params
    values = {name: query.get(name, "").strip() for name in ("key", "model", "status", "since", "until")}
    if key_id is not None:
        values["key"] = key_id
    status = values["status"] or None
    if status is not None and status not in STATUSES:
        raise BadFilter(f"status must be one of {', '.join(STATUSES)}")
    times: dict[str, int | None] = {}
    for name in ("since", "until"):
        try:
            times[name] = parse_time(values[name], past=True) if values[name] else None
        except OperationError as exc:
            raise BadFilter(f"{name}: {exc}") from None
    return LogFilter(values["key"] or None, values["model"] or None, status, times["since"],
                     times["until"]), values


def _prompts(request: Request) -> bool:
    return console_of(request).gateway.config.gateway.log_prompts


async def _page(request: Request, key_id: str | None, template_nav: str) -> Response:
    console = console_of(request)
    try:
        where, values = _filters(request, key_id)
        rows = await (await console.reports()).log(
            where, limit=console.settings.page_size + 1, before=request.query_params.get("before") or None,
            prompts=_prompts(request))
        error = None
    except (BadFilter, ValueError) as exc:
        rows, values, error = [], {n: request.query_params.get(n, "") for n in
                                   ("key", "model", "status", "since", "until")}, str(exc)
    more = len(rows) > console.settings.page_size
    rows = rows[: console.settings.page_size]
    query = {k: v for k, v in values.items() if v and not (k == "key" and key_id is not None)}
    return console.render(request, "log.html", {
        "rows": rows, "filters": values, "error": error, "statuses": STATUSES, "query": query,
        "next_cursor": rows[-1].cursor if more and rows else None, "prompts": _prompts(request),
        "holder": key_id is not None, "models": await _models(request, key_id), "nav": template_nav,
        "csv_route": "my_log_csv" if key_id is not None else "log_csv",
        "page_route": "my_log" if key_id is not None else "log",
    }, status=400 if error else 200)


async def _models(request: Request, key_id: str | None) -> list[str]:
    """The model names offered in the filter: the configured ones, or those the key may use."""
    console = console_of(request)
    if key_id is None:
        return sorted(console.gateway.models)
    from .views_usage import allowed_models

    key = await (await console.store()).get_key(key_id)
    return sorted(await allowed_models(request, key)) if key is not None else []


def _csv(request: Request, key_id: str | None) -> Response:
    try:
        where, _ = _filters(request, key_id)
    except BadFilter as exc:
        return JSONResponse({"error": {"message": str(exc), "status": 400}}, status_code=400)
    prompts = _prompts(request)

    async def lines() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS + (("prompt",) if prompts else ()))
        reports = await console_of(request).reports()
        count = 0
        async for row in reports.export(where, prompts=prompts):
            writer.writerow(_csv_row(row) + ((row.prompt or "",) if prompts else ()))
            count += 1
            if count % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers={
        "content-disposition": 'attachment; filename="compatgate-requests.csv"'})


def _csv_row(row: LogRow) -> tuple[Any, ...]:
    return (
        when(row.created_ms) + "Z", row.request_id, row.key_id, row.endpoint, row.model,
        row.provider or "", row.status, row.status_code, row.prompt_tokens, row.completion_tokens,
        row.total_tokens, format_micro(row.cost_micro), format_micro(row.charged_micro), row.latency_ms,
        "" if row.ttft_ms is None else row.ttft_ms, row.finish_reason or "", row.error or "",
    )


async def _json(request: Request, key_id: str | None) -> Response:
    console = console_of(request)
    try:
        where, _ = _filters(request, key_id)
        rows = await (await console.reports()).log(
            where, limit=console.settings.page_size + 1, before=request.query_params.get("before") or None,
            prompts=_prompts(request))
    except (BadFilter, ValueError) as exc:
        return JSONResponse({"error": {"message": str(exc), "status": 400}}, status_code=400)
    more = len(rows) > console.settings.page_size
    rows = rows[: console.settings.page_size]
    data = []
    for row in rows:
        item = asdict(row)
        if not _prompts(request):
            item.pop("prompt")
        data.append(item)
    return JSONResponse({"object": "list", "data": data,
                         "next_cursor": rows[-1].cursor if more and rows else None})


@guard("operator")
async def log_page(request: Request) -> Response:
    return await _page(request, None, "log")


@guard("operator", data=True)
async def log_csv(request: Request) -> Response:
    return _csv(request, None)


@guard("operator", data=True)
async def log_data(request: Request) -> Response:
    return await _json(request, None)


def _own_key(request: Request) -> str | None:
    session = request.state.session
    return None if session.operator else session.key_id


@guard("any")
async def my_log_page(request: Request) -> Response:
    key_id = _own_key(request)
    if key_id is None:
        return console_of(request).render(request, "error.html", {"message": "Operators have no key of their own."}, status=404)
    return await _page(request, key_id, "my_log")


@guard("any", data=True)
async def my_log_csv(request: Request) -> Response:
    key_id = _own_key(request)
    if key_id is None:
        return JSONResponse({"error": {"message": "Operators have no key of their own.", "status": 404}}, status_code=404)
    return _csv(request, key_id)


@guard("any", data=True)
async def my_log_data(request: Request) -> Response:
    key_id = _own_key(request)
    if key_id is None:
        return JSONResponse({"error": {"message": "Operators have no key of their own.", "status": 404}}, status_code=404)
    return await _json(request, key_id)
