"""What the billing tests share: configurations, a scripted upstream, served gateways (in this
process or as real ``compatgate serve`` processes), the CLI, and a look into the database."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx2
import orjson
from compatgate_billing import Billing, LedgerEntry, Store
from compatgate_billing.store import now_ms
from compatgate_billing.store.postgres import PostgresDatabase
from compatgate_billing.store.sqlite import SQLiteDatabase
from starlette.types import Send

from compatgate import Gateway
from compatgate.testing import FakeUpstream, Received, ServedGateway
from compatgate.usage import estimate_prompt_tokens

HERE = Path(__file__).resolve().parent
SHARED = Path(
    os.environ.get("COMPATGATE_SHARED", Path(__file__).resolve().parents[3].parent / "shared")
)
SPEC = SHARED / "spec" / "openai-openapi.yaml"
POSTGRES_URL = os.environ.get(
    "COMPATGATE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SECRET_ENV = "COMPATGATE_BILLING_TEST_SECRET"
SERVER_SECRET = "server-secret-for-tests-0123456789abcdef"
ADMIN_KEY = "admin-key-for-tests-0123456789abcdef"
STATIC_KEY = "sk-static-test-key"
UPSTREAM_KEY = "sk-upstream-test-key"
MESSAGES = [{"role": "user", "content": "Say something."}]
STARTUP_TIMEOUT = 20.0

# Per million tokens, so micro-units per token: input 1, cached 0.5, cache write 0.75, output 2.
PRICES = {
    "gpt-4o*": {
        "input": 1,
        "output": 2,
        "cached_input": 0.5,
        "cache_write": 0.75,
        "max_tokens": 1000,
    }
}


@dataclass(frozen=True)
class Database:
    """Where a test's billing data lives: an SQLite file or a fresh PostgreSQL schema."""

    url: str
    schema: str | None = None

    def settings(self) -> dict[str, Any]:
        return {"database": self.url, **({"schema": self.schema} if self.schema else {})}

    def store(self) -> Store:
        if self.schema is not None:
            return Store(PostgresDatabase(self.url, schema=self.schema, pool_size=2))
        return Store(SQLiteDatabase(Path(self.url.removeprefix("sqlite:///"))))

    def run(self, work: Callable[[Store], Any], *, migrate: bool = True) -> Any:
        """``await work(store)`` on a store of its own, from synchronous test code."""

        async def main() -> Any:
            store = self.store()
            await store.open(migrate=migrate)
            try:
                return await work(store)
            finally:
                await store.close()

        return asyncio.run(main())

    def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return self.run(lambda store: store.db.reader.fetch(sql, *args), migrate=False)

    def dump(self) -> str:
        """Every row of every table, as text (to look for secrets)."""

        async def work(store: Store) -> str:
            lines = []
            for table in await store.db.tables():
                for row in await store.db.reader.fetch(f"SELECT * FROM {table}"):
                    lines.append(f"{table}: {row!r}")
            return "\n".join(lines)

        return self.run(work, migrate=False)

    def key(self, key_id: str) -> Any:
        return self.run(lambda store: store.get_key(key_id), migrate=False)

    def wait_for_rows(self, count: int, timeout: float = 20.0) -> list[tuple[Any, ...]]:
        """The ledger rows (``id, request_id, key_id, status, cost, charged, reserved,
        estimated, prompt, completion``), once there are at least ``count``."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.fetch(
                "SELECT id, request_id, key_id, status, cost_micro, charged_micro, reserved_micro, "
                "estimated, prompt_tokens, completion_tokens, status_code FROM billing_usage ORDER BY created_ms"
            )
            if len(rows) >= count or time.monotonic() > deadline:
                assert len(rows) >= count, f"expected {count} ledger rows, got {len(rows)}"
                return rows
            time.sleep(0.05)


def postgres_database(url: str) -> Iterator[Database]:
    """A schema of its own in the test PostgreSQL database at ``url``, dropped afterwards."""
    schema = f"billing_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        yield Database(url, schema)
    finally:
        import asyncpg

        async def drop() -> None:
            connection = await asyncpg.connect(url, timeout=5)
            try:
                await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await connection.close()

        asyncio.run(drop())


def billing_config(upstream_url: str, database: Database, **billing: Any) -> dict[str, Any]:
    """A gateway with static key `STATIC_KEY`, models gpt-4o, gpt-4o-mini, other-model and an
    embedding model on the fake upstream, and billing on ``database``."""
    return {
        "gateway": {"api_keys": [STATIC_KEY]},
        "providers": {
            "up": {
                "type": "openai",
                "base_url": f"{upstream_url}/v1",
                "api_key": UPSTREAM_KEY,
                "read_timeout": 20.0,
                "connect_timeout": 2.0,
            },
        },
        "models": [
            {"name": "gpt-4o", "provider": "up"},
            {"name": "gpt-4o-mini", "provider": "up"},
            {"name": "other-model", "provider": "up"},
            {
                "name": "gpt-4o-embedding",
                "provider": "up",
                "upstream_model": "text-embedding-3-small",
            },
        ],
        "plugins": {
            "billing": {
                **database.settings(),
                "secret": SERVER_SECRET,
                "admin_key": ADMIN_KEY,
                "prices": PRICES,
                **billing,
            }
        },
    }


def chat_answer(prompt: int, completion: int, **details: Any) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if details:
        usage["prompt_tokens_details"] = details
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1727346172,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi.", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


def worst_case_answer(delay: float = 0.0) -> Callable[[Received, Send], Any]:
    """An upstream answer whose usage is exactly what admission reserves: the gateway's prompt
    estimate and ``max_tokens`` tokens out."""

    async def handler(request: Received, send: Send) -> None:
        body = request.json
        if delay:
            await asyncio.sleep(delay)
        await FakeUpstream.json_reply(
            chat_answer(estimate_prompt_tokens(body), body["max_tokens"])
        )(request, send)

    return handler


def worst_case_micro(max_tokens: int, messages: list[dict[str, Any]] = MESSAGES) -> int:
    """What a gpt-4o request costs at `PRICES` when it uses its worst case (input 1, output 2)."""
    return estimate_prompt_tokens({"messages": messages}) * 1 + max_tokens * 2


def ledger_entry(entry_id: str, key_id: str, cost: int, **changes: Any) -> LedgerEntry:
    """A ledger entry of 10 prompt and 5 completion tokens costing ``cost``, with ``changes``."""
    base = LedgerEntry(
        id=entry_id,
        request_id=f"req_{entry_id}",
        created_ms=now_ms(),
        key_id=key_id,
        endpoint="chat.completions",
        model="gpt-4o",
        provider="up",
        upstream_model="gpt-4o",
        status="ok",
        status_code=200,
        streamed=False,
        prompt_tokens=10,
        completion_tokens=5,
        cached_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        estimated=False,
        cost_micro=cost,
        latency_ms=12,
        ttft_ms=None,
        error=None,
    )
    return replace(base, **changes)


class Served(ServedGateway):
    """A gateway served on loopback in this process."""

    client_timeout = 20.0

    def __init__(self, gateway: Gateway, url: str) -> None:
        super().__init__(gateway, url)
        self.http = httpx2.Client(timeout=10)

    def close(self) -> None:
        self.http.close()

    @property
    def billing(self) -> Billing:
        plugin = self.gateway.pm.get_plugin("billing")
        assert isinstance(plugin, Billing)
        return plugin

    def admin(
        self, method: str, path: str, json: Any = None, key: str | None = ADMIN_KEY
    ) -> httpx2.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return self.http.request(method, f"{self.url}/admin{path}", json=json, headers=headers)

    def create_key(self, **spec: Any) -> tuple[str, str]:
        """``(key id, full key)`` of a new key, through the admin API."""
        response = self.admin("POST", "/keys", spec)
        assert response.status_code == 201, response.text
        return response.json()["id"], response.json()["secret"]


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """A minimal TOML writer for test configurations (tables, arrays of tables, scalars)."""
    lines, tables = [], []
    for key, value in data.items():
        name = f'"{key}"' if not key.replace("_", "").replace("-", "").isalnum() else key
        if isinstance(value, dict):
            tables.append((f"{prefix}{name}", value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                lines.append(f"\n[[{prefix}{name}]]\n" + to_toml(item, f"{prefix}{name}."))
        else:
            lines.append(f"{name} = {orjson.dumps(value).decode()}")
    for path, table in tables:
        lines.append(f"\n[{path}]\n" + to_toml(table, f"{path}."))
    return "\n".join(lines) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command() -> list[str]:
    script = Path(sys.executable).parent / "compatgate"
    return [str(script)] if script.exists() else [sys.executable, "-m", "compatgate"]


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run the real ``compatgate`` command to completion."""
    return subprocess.run(
        [*_command(), *args],
        env={**os.environ, SECRET_ENV: SERVER_SECRET, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class GatewayProcess:
    """``compatgate serve --config PATH`` in a process of its own; its output goes to ``log``.
    Started at construction; `wait_ready` waits for ``GET /health``."""

    def __init__(self, config: Path, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.url = f"http://127.0.0.1:{self.port}/v1"
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    *_command(),
                    "serve",
                    "--config",
                    str(config),
                    "--port",
                    str(self.port),
                    "--log-level",
                    "info",
                ],
                env={**os.environ, SECRET_ENV: SERVER_SECRET},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"compatgate serve exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                if httpx2.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"compatgate serve did not start:\n{self.output()}")
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM (uvicorn's graceful shutdown) and wait; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"compatgate serve did not stop within {timeout} s") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def write_config(config: dict[str, Any], directory: Path) -> Path:
    """``config`` as a TOML file in ``directory``, the billing secret read from the environment."""
    billing = config["plugins"]["billing"]
    written = {**config, "plugins": {"billing": {**billing, "secret": f"${{{SECRET_ENV}}}"}}}
    path = directory / "compatgate.toml"
    path.write_text(to_toml(written))
    return path


@contextmanager
def gateway_processes(config: Path, count: int) -> Iterator[list[GatewayProcess]]:
    """``count`` gateway processes serving the configuration file ``config``; stopped
    gracefully at the end (those still running)."""
    processes: list[GatewayProcess] = []
    try:
        for index in range(count):  # started together, ready in about the time of one
            processes.append(GatewayProcess(config, config.parent / f"gateway-{index}.log"))
        for process in processes:
            process.wait_ready()
        yield processes
    finally:
        for process in processes:
            try:
                process.stop()
            except AssertionError:
                pass
