"""Floor: the httpx2 relay of httpx2_floor.py, with a minimal aiohttp transport written here.

httpx-aiohttp on PyPI targets httpx 0.28, so this file carries its own ~30-line
httpx2.AsyncBaseTransport over one shared aiohttp.ClientSession.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx2
from _serve import POOL_SIZE, run
from httpx2_floor import make_app as make_httpx2_app
from starlette.applications import Starlette


class AiohttpStream(httpx2.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:  # created lazily: it must belong to the server's event loop
            connector = aiohttp.TCPConnector(limit=POOL_SIZE, ttl_dns_cache=None)
            timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, auto_decompress=False
            )
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._get_session().request(
            request.method,
            str(request.url),
            headers=request.headers.multi_items(),
            data=await request.aread(),
            allow_redirects=False,
        )
        return httpx2.Response(
            response.status,
            headers=response.raw_headers,
            stream=AiohttpStream(response),
            request=request,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def make_app(upstream: str) -> Starlette:
    return make_httpx2_app(upstream, transport=AiohttpTransport())


if __name__ == "__main__":
    run(make_app, __doc__ or "")
