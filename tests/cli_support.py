"""What the tests of the ``compatgate`` command share: running it as a real subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx2
import openai
import pytest

__all__ = ["STARTUP_TIMEOUT", "Server", "client", "compatgate", "free_port", "server", "serving"]

STARTUP_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def compatgate(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
               timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (within ``timeout``: then it and any workers are killed)."""
    command = [sys.executable, "-m", "compatgate", *args]
    process = subprocess.Popen(
        command, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=5)
        pytest.fail(f"{' '.join(args)}: still running after {timeout} s")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


class Server:
    """A ``compatgate serve`` process: ``url`` of its API (``.../v1``), ``root`` (without
    ``/v1``), the ``process``, and ``log()``, what it wrote on standard error so far."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: IO[bytes]) -> None:
        self.process = process
        self.root = f"http://127.0.0.1:{port}"
        self.url = f"{self.root}/v1"
        self._log = log

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode()


@contextmanager
def server(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
           log_level: str | None = "warning") -> Iterator[Server]:
    """Run ``compatgate serve ARGS --port <free> [--log-level L]`` until ``GET /health``
    answers; yield the `Server`; stop the process (and its workers) at the end, whatever
    happens (SIGTERM, then SIGKILL for what is left of its session)."""
    port = free_port()
    level = ["--log-level", log_level] if log_level else []
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "compatgate", "serve", *args, "--port", str(port), *level],
            cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True,
        )
        served = Server(process, port, log)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                if process.poll() is not None:
                    pytest.fail(f"compatgate serve exited with {process.returncode}:\n{served.log()}")
                try:
                    if httpx2.get(f"{served.root}/health", timeout=1).json() == {"status": "ok"}:
                        break
                except httpx2.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("compatgate serve did not become ready")
                time.sleep(0.05)
            yield served
        finally:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(30)
            finally:
                try:  # whatever is left of the session we created (workers): nothing should be
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(5)


@contextmanager
def serving(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            log_level: str | None = "warning", logs: list[str] | None = None) -> Iterator[str]:
    """`server`, yielding only the API's base URL; what the process wrote on standard error is
    appended to ``logs`` once it has stopped."""
    with server(*args, cwd=cwd, env=env, log_level=log_level) as served:
        try:
            yield served.url
        finally:
            if logs is not None:
                served.process.terminate()
                served.process.wait(30)
                logs.append(served.log())


def client(url: str, key: str = "sk-demo") -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=url, max_retries=0, timeout=10)
