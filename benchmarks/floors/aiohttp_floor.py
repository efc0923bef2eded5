"""Floor: the smallest Starlette relay over a raw aiohttp.ClientSession."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp
from _serve import INBOUND_KEY, POOL_SIZE, UPSTREAM_KEY, relay_headers, run
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def make_app(upstream: str) -> Starlette:
    sessions: list[aiohttp.ClientSession] = []  # created in lifespan, on the server's loop

    async def relay(request: Request) -> Response:
        if request.headers.get("authorization") != INBOUND_KEY:
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        response = await sessions[0].post(
            f"{upstream}/{request.path_params['path']}",
            data=await request.body(),
            headers={"authorization": f"Bearer {UPSTREAM_KEY}", "content-type": "application/json"},
        )
        headers = relay_headers(response.headers.items())
        if response.content_type == "text/event-stream":
            close = BackgroundTask(response.release)
            chunks = response.content.iter_any()
            return StreamingResponse(chunks, response.status, headers, background=close)
        body = await response.read()
        return Response(body, response.status, headers)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=POOL_SIZE, ttl_dns_cache=None)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False
        ) as session:
            sessions.append(session)
            yield

    return Starlette(routes=[Route("/v1/{path:path}", relay, methods=["POST"])], lifespan=lifespan)


if __name__ == "__main__":
    run(make_app, __doc__ or "")
