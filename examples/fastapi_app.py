"""Mounting compatgate inside a FastAPI app.

Run: ``COMPATGATE_CONFIG=compatgate.toml uv run uvicorn examples.fastapi_app:app`` (without
the variable it serves the offline demo), then point any OpenAI client at
``http://127.0.0.1:8000/v1``.
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
