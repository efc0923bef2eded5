"""Floor: the smallest Starlette relay over httpx2 and its default transport."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx2
from _serve import INBOUND_KEY, POOL_SIZE, UPSTREAM_KEY, relay_headers, run
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


def make_app(upstream: str, transport: httpx2.AsyncBaseTransport | None = None) -> Starlette:
    limits = httpx2.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
    client = httpx2.AsyncClient(limits=limits, timeout=httpx2.Timeout(60.0), transport=transport)

    async def relay(request: Request) -> Response:
        if request.headers.get("authorization") != INBOUND_KEY:
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        upstream_request = client.build_request(
            "POST",
            f"{upstream}/{request.path_params['path']}",
            content=await request.body(),
            headers={"authorization": f"Bearer {UPSTREAM_KEY}", "content-type": "application/json"},
        )
        response = await client.send(upstream_request, stream=True)
        headers = relay_headers(response.headers.items())
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            close = BackgroundTask(response.aclose)
            chunks = response.aiter_raw()
            return StreamingResponse(chunks, response.status_code, headers, background=close)
        body = await response.aread()
        return Response(body, response.status_code, headers)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with client:
            yield

    return Starlette(routes=[Route("/v1/{path:path}", relay, methods=["POST"])], lifespan=lifespan)


if __name__ == "__main__":
    run(make_app, __doc__ or "")
