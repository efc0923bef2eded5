"""Mounting compatgate inside a FastAPI app.

Run it from the repository root. The offline demo (API key ``sk-demo``, models ``demo-chat``
and ``demo-embedding``; no provider key, no network)::

    uv run uvicorn examples.fastapi_app:app

A real configuration, e.g. ``examples/compatgate.toml`` with the variables it reads::

    COMPATGATE_CONFIG=examples/compatgate.toml COMPATGATE_CLIENT_KEY=sk-local-1 \
    OPENAI_API_KEY=sk-... uv run uvicorn examples.fastapi_app:app

Then point any OpenAI client at ``http://127.0.0.1:8000/v1`` with that key (``sk-demo``, or
``sk-local-1``). ``/`` is the host app's own route; ``/v1/health/ready`` the gateway's
readiness probe.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from compatgate import Gateway
from compatgate.defaults.demo import demo_config


def create_app(config: Any) -> FastAPI:
    gateway = Gateway(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A Mount does not run a sub-app's lifespan: compose the gateway's into the host's, so
        # its connections open at start-up and close at shutdown.
        async with gateway.lifespan():
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"hello": "this is the host app; the OpenAI API is under /v1"}

    app.mount("/v1", gateway)
    return app


app = create_app(os.environ.get("COMPATGATE_CONFIG") or demo_config())
