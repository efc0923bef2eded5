"""An httpx2 transport that sends requests with aiohttp.

Providers speak the httpx API; under it this transport uses aiohttp's connection pool, which
measured more than twice as fast as httpx2's default transport in a minimal relay on this
project's benchmark machine (see ``benchmarks/README.md``). The session is created on first use,
inside the running event loop. Closing a response before its end closes the connection, so an
upstream sees a cancelled request at once. URLs go out exactly as httpx2 encoded them.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import aiohttp
import httpx2
import yarl

__all__ = ["AiohttpTransport"]

_CHUNK = 64 * 1024


_ERRORS = (TimeoutError, aiohttp.ClientError)


def _mapped(exc: BaseException) -> httpx2.TransportError:
    """The httpx2 exception for an aiohttp (or timeout) exception."""
    if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
        return httpx2.ReadTimeout(str(exc) or "timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx2.ConnectError(str(exc))
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx2.RemoteProtocolError(str(exc) or "incomplete response body")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx2.RemoteProtocolError(str(exc) or "server disconnected")
    if isinstance(exc, aiohttp.ClientConnectionError):
        return httpx2.ReadError(str(exc) or "connection error")
    return httpx2.TransportError(str(exc))


class _ResponseStream(httpx2.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:  # not a context manager: one less object held by every open stream
            async for chunk in self._response.content.iter_any():
                yield chunk
        except _ERRORS as exc:
            raise _mapped(exc) from exc

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()  # drop the connection: the upstream sees the cancel


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """``httpx2.AsyncClient(transport=AiohttpTransport(...))``."""

    def __init__(
        self,
        *,
        limits: httpx2.Limits = httpx2.Limits(max_connections=1000),
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._limits = limits
        self._ssl: ssl.SSLContext | bool = (
            verify if isinstance(verify, ssl.SSLContext) else (httpx2.create_ssl_context() if verify else False)
        )
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry or 15.0,
            ssl=self._ssl,
            enable_cleanup_closed=True,
        )
        return aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._session is None or self._session.closed:
            self._session = self._open()
        timeout = self._timeout(request.extensions.get("timeout", {}))
        try:
            data: bytes | httpx2.AsyncByteStream | None = request.content or None
        except httpx2.RequestNotRead:
            data = request.stream  # type: ignore[assignment]
            request.headers.pop("transfer-encoding", None)
        try:
            response = await self._session.request(
                request.method,
                # as httpx2 encoded it: parsed again, '%3A' in a path segment (a model name's
                # colon) would become ':' and change what the upstream reads
                yarl.URL(str(request.url), encoded=True),
                headers=request.headers.multi_items(),
                data=data,
                allow_redirects=False,
                compress=None,
                timeout=timeout,
            )
        except _ERRORS as exc:
            raise _mapped(exc) from exc
        return httpx2.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    def _timeout(self, given: dict[str, float | None]) -> aiohttp.ClientTimeout:
        """httpx2's timeouts as aiohttp's (the same few settings recur: made once each)."""
        key = (given.get("connect"), given.get("read"), given.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=key[0], sock_read=key[1], connect=key[2])
            if len(self._timeouts) < 64:
                self._timeouts[key] = timeout
        return timeout

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
