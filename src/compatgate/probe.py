"""Asking an upstream what it serves, with a provider's own URL, key and headers:
``compatgate check --probe`` calls `Provider.upstream_models`, which HTTP providers build on
`get_json`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx2
import orjson

from .http import default_headers, request_errors, timeout, upstream_error

if TYPE_CHECKING:
    from .context import RequestContext
    from .provider import HTTPProvider

__all__ = ["get_json", "listed_ids"]


async def get_json(provider: HTTPProvider, ctx: RequestContext, path: str) -> dict[str, Any]:
    """``GET path`` (relative to the provider's ``base_url``) with the provider's headers and
    timeouts; the decoded JSON object, or the provider's `UpstreamError` for an error status
    (a transport failure is a 502/504 `UpstreamError` too, and is logged)."""
    headers = {**default_headers(provider.config), **provider.headers(ctx)}
    headers.pop("content-type", None)
    request = httpx2.Request("GET", provider.url(path), headers=headers,
                             extensions={"timeout": timeout(provider.config).as_dict()})
    with request_errors(provider.name, request):
        response = await provider.transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
    if response.status_code >= 400:
        raise provider.error_for(response.status_code, response.content)
    try:
        data = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise upstream_error(502, b"The upstream answered with a body that is not JSON.") from None
    if not isinstance(data, dict):
        raise upstream_error(502, b"The upstream answered with JSON that is not an object.")
    return data


def listed_ids(data: dict[str, Any], array: str, field: str, prefix: str = "") -> list[str]:
    """The ``field`` of every entry of ``data[array]`` (without ``prefix``): a model list's ids
    (``"data"``/``"id"`` for OpenAI and Anthropic, ``"models"``/``"name"`` for Gemini)."""
    entries = data.get(array)
    if not isinstance(entries, list):
        raise upstream_error(502, f"The upstream's model list has no {array!r} array.".encode())
    values = [e[field] for e in entries if isinstance(e, dict) and isinstance(e.get(field), str)]
    return [value.removeprefix(prefix) for value in values]
