"""The upstream HTTP client: the one place that knows which transport runs under the httpx API.

`create_transport` builds one pooled transport per provider: ``transport = "aiohttp"`` (the
default, chosen by measurement) or ``"httpx"`` (httpx2's own); `default_headers` and `timeout`
are what each call carries, and `create_client` puts the three together in an
``httpx2.AsyncClient``. The error helpers turn
transport failures and upstream error bodies into `UpstreamError`s that never carry the
upstream key or credentials from a URL; a transport failure (or timeout) is logged on the
``compatgate.upstream`` logger (WARNING) with its cause, the provider and the URL without
credentials, since the client only learns its kind.
"""

from __future__ import annotations

import builtins
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2
import orjson

from .aiohttp_transport import AiohttpTransport
from .config import ProviderConfig
from .exceptions import (
    UpstreamError,
    UpstreamStreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

__all__ = ["Scrubber", "create_client", "create_transport", "default_headers", "display_url", "request_errors",
           "reset_duration", "scrub", "scrub_urls", "stream_errors", "timeout", "upstream_error"]

logger = logging.getLogger("compatgate.upstream")

_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_SECRET_PARAMETER = re.compile(r"(?i)([?&][^=&\s]*(?:key|token|secret|signature|password)[^=&\s]*=)[^&\s]+")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "invalid_request_error", 429: "rate_limit_error"}


def create_transport(config: ProviderConfig) -> httpx2.AsyncBaseTransport:
    """The pooled transport of ``config``'s provider: aiohttp's, or httpx2's own."""
    limits = httpx2.Limits(
        max_connections=config.max_connections, max_keepalive_connections=config.max_connections
    )
    if config.transport == "httpx":
        return httpx2.AsyncHTTPTransport(limits=limits)
    return AiohttpTransport(limits=limits)


def default_headers(config: ProviderConfig) -> dict[str, str]:
    """The headers of every upstream call: the client defaults, then the provider's ``headers``."""
    from . import __version__  # the package is imported by the time a provider is configured

    return {"accept": "*/*", "accept-encoding": "gzip, deflate", "user-agent": f"compatgate/{__version__}",
            **{name.lower(): value for name, value in config.headers.items()}}  # fmt: skip


def timeout(config: ProviderConfig) -> httpx2.Timeout:
    """The transport's timeouts: ``connect_timeout`` (also for a free pool connection) and
    ``read_timeout`` (also for writing)."""
    return httpx2.Timeout(
        connect=config.connect_timeout,
        read=config.read_timeout,
        write=config.read_timeout,
        pool=config.connect_timeout,
    )


def create_client(config: ProviderConfig, **kwargs: Any) -> httpx2.AsyncClient:
    """A pooled client for ``config.base_url`` with the provider's timeouts and headers
    (``kwargs`` go to ``httpx2.AsyncClient``; ``transport`` defaults to `create_transport`)."""
    if "transport" not in kwargs:
        kwargs["transport"] = create_transport(config)
    return httpx2.AsyncClient(
        base_url=config.base_url or "", headers=default_headers(config), timeout=timeout(config), **kwargs
    )


@contextmanager
def request_errors(provider: str, request: httpx2.Request | None = None) -> Iterator[None]:
    """Map failures before the upstream answered: timeout -> 504, anything else -> 502; each
    is logged with ``request`` (its method, URL and ``x-request-id``) when given."""
    try:
        yield
    except httpx2.TimeoutException as exc:
        _log_failure(provider, request, exc, "timed out")
        raise UpstreamTimeoutError(f"The upstream provider {provider!r} timed out.") from None
    except httpx2.HTTPError as exc:
        _log_failure(provider, request, exc, "failed")
        raise UpstreamUnavailableError(
            f"The upstream provider {provider!r} could not be reached ({type(exc).__name__})."
        ) from None


@contextmanager
def stream_errors(provider: str, response: httpx2.Response | None = None) -> Iterator[None]:
    """Map failures while an upstream body is being read to `UpstreamStreamError`; each is
    logged with the request of ``response`` when it is known."""
    try:
        yield
    except httpx2.TimeoutException as exc:
        _log_failure(provider, _request_of(response), exc, "stopped sending data (timed out) in its answer")
        raise UpstreamStreamError(
            f"The upstream provider {provider!r} stopped sending data (timed out).",
            status_code=504,
        ) from None
    except httpx2.HTTPError as exc:
        _log_failure(provider, _request_of(response), exc, "broke off its answer")
        raise UpstreamStreamError(
            f"The connection to the upstream provider {provider!r} broke ({type(exc).__name__})."
        ) from None


def display_url(url: httpx2.URL | str) -> str:
    """``url`` as logs may show it: scheme, host, port and path; no credentials, no query."""
    if not isinstance(url, httpx2.URL):
        try:
            url = httpx2.URL(url)
        except httpx2.InvalidURL:
            return scrub_urls(str(url)).split("?", 1)[0]
    if not url.scheme:  # a relative URL (a base_url without http://): shown as it is
        return scrub_urls(str(url.copy_with(query=None, fragment=None)))
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"


def scrub_urls(text: str) -> str:
    """``text`` with the credentials of URLs (``user:password@``) and the values of
    key-, token- and secret-like query parameters replaced by ``***``."""
    return _SECRET_PARAMETER.sub(r"\1***", _URL_CREDENTIALS.sub(r"\1***@", text))


def _request_of(response: httpx2.Response | None) -> httpx2.Request | None:
    try:
        return response.request if response is not None else None
    except RuntimeError:  # a transport that did not set it
        return None


def _log_failure(provider: str, request: httpx2.Request | None, exc: Exception, what: str) -> None:
    if not logger.isEnabledFor(logging.WARNING):
        return
    if request is None:
        try:
            request = exc.request if isinstance(exc, httpx2.RequestError) else None
        except RuntimeError:  # the exception does not know its request
            request = None
    where = f" {request.method} {display_url(request.url)}" if request is not None else ""
    request_id = request.headers.get("x-request-id") if request is not None else None
    detail = scrub_urls(" ".join(str(exc).split())) or "no detail"
    logger.warning(
        "upstream %r%s %s%s: %s: %s",
        provider, where, what, f" (request {request_id})" if request_id else "", type(exc).__name__, detail,
    )


def upstream_error(status: int, content: bytes, *, secrets: Iterable[str | None] = ()) -> UpstreamError:
    """An `UpstreamError` with the upstream's status and its error in OpenAI form."""
    message, type_, code, param = _describe(content)
    if not message:
        message = f"The upstream provider answered with HTTP {status}."
    return UpstreamError(
        scrub(message, secrets),
        status_code=status if 400 <= status <= 599 else 502,
        type=type_ or _TYPES.get(status, "upstream_error" if status < 500 else "api_error"),
        code=code,
        param=param,
    )


def _describe(content: bytes) -> tuple[str, str | None, str | None, str | None]:
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content.decode("utf-8", "replace").strip()[:2000], None, None, None
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, list) and error and isinstance(error[0], dict):  # Gemini-style lists
        error = error[0].get("error", error[0])
    if isinstance(error, str):
        return error, None, None, None
    if not isinstance(error, dict):
        return str(error)[:2000], None, None, None
    message = error.get("message") or error.get("detail") or error.get("msg") or ""
    code = error.get("code")
    return (
        message if isinstance(message, str) else orjson.dumps(message).decode(),
        _str(error.get("type")),
        str(code) if code is not None else None,
        _str(error.get("param")),
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (key, password, URL credential) replaced by ``***``."""
    return Scrubber(secrets)(text)


class Scrubber:
    """Replaces every secret of a fixed set (keys, passwords, URL credentials, at least four
    characters long) by ``***``, in one pass; ``bytes`` does the same to UTF-8 bytes.
    The gateway has one, holding every upstream's secrets and the static client keys, and
    applies it to every text that leaves it (errors, stream error events, records, logs)."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        kept = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        self._text = re.compile("|".join(map(re.escape, kept))) if kept else None
        self._bytes = re.compile(b"|".join(re.escape(s.encode()) for s in kept)) if kept else None
        self._encoded = [s.encode() for s in kept]

    def __call__(self, text: str) -> str:
        """``text`` scrubbed (the same object when it held no secret)."""
        if self._text is None or self._text.search(text) is None:
            return text
        return self._text.sub("***", text)

    def bytes(self, data: bytes) -> bytes:
        """``data`` scrubbed (the same object when it held no secret)."""
        if self._bytes is None or self._bytes.search(data) is None:
            return data
        return self._bytes.sub(b"***", data)

    def held(self, data: builtins.bytes) -> int:
        """How many bytes at the end of ``data`` could be the start of a secret that the next
        piece of a stream completes (0 almost always): a relay keeps them back until it knows."""
        longest = 0
        for secret in self._encoded:
            window = data[-(len(secret) - 1):]
            start = window.find(secret[:1])
            while start != -1:
                if secret.startswith(window[start:]):
                    longest = max(longest, len(window) - start)
                    break
                start = window.find(secret[:1], start + 1)
        return longest


def reset_duration(seconds: float) -> str:
    """A duration as OpenAI's ``x-ratelimit-reset-*`` headers (and Go's ``time.Duration``)
    write it, to the millisecond: ``0s``, ``20ms``, ``1s``, ``1.5s``, ``6m0s``, ``1h2m3.25s``."""
    ms = max(0, round(seconds * 1000))
    if ms < 1000:
        return f"{ms}ms" if ms else "0s"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    text = f"{rest // 1000}.{rest % 1000:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text
