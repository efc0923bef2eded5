"""Measurement primitives for run.py: processes, readiness, validation, wrk, RSS and CPU."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = Path(__file__).resolve().parent / "post.lua"
API_KEY = "sk-bench"  # the static key of every target; a variant may use another (Session)


def headers(api_key: str = API_KEY) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}


class BenchError(Exception):
    """A target misbehaved (did not start, answered wrongly, wrk failed)."""


@dataclass
class Process:
    """A child process in its own session, so that it and its children stop together."""

    popen: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, argv: list[str], log_path: Path, cwd: Path, env: dict[str, str]) -> Process:
        log = log_path.open("wb")
        popen = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return cls(popen, log_path)

    def log_tail(self, lines: int = 6) -> str:
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=8)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


def split_url(url: str) -> tuple[str, int, str]:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port, parts.path


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def post(url: str, body: bytes, timeout: float = 10.0, api_key: str = API_KEY) -> Answer:
    host, port, path = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body, headers(api_key))
        response = conn.getresponse()
        found = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, found, response.read())
    finally:
        conn.close()


def wait_ready(
    url: str, body: bytes, timeout_s: float, process: Process | None, api_key: str = API_KEY
) -> None:
    """Poll `url` with a JSON chat request until it answers 200 (or the process dies)."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.popen.poll() is not None:
            code = process.popen.returncode
            raise BenchError(f"exited with code {code}: {process.log_tail()}")
        try:
            answer = post(url, body, timeout=2.0, api_key=api_key)
            if answer.status == 200:
                return
            last_error = f"HTTP {answer.status}: {answer.body[:200]!r}"
        except OSError as error:
            last_error = str(error)
        time.sleep(0.2)
    raise BenchError(f"not ready after {timeout_s:.0f}s ({last_error})")


def _data_events(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


def _check_chunks(check: str, text: str) -> None:
    """An OpenAI chunk stream: chat.completion.chunks with content and a finish, then [DONE]."""
    events = _data_events(text)
    if not events or events[-1] != "[DONE]":
        raise BenchError(f"{check}: stream does not end with data: [DONE]: {text[-200:]!r}")
    chunks = [json.loads(event) for event in events[:-1]]
    if any(chunk.get("object") != "chat.completion.chunk" for chunk in chunks):
        raise BenchError(f"{check}: an event is not a chat.completion.chunk: {text[:200]!r}")
    deltas = [choice for chunk in chunks for choice in chunk.get("choices") or []]
    if not any(choice.get("delta", {}).get("content") for choice in deltas):
        raise BenchError(f"{check}: no content delta: {text[:300]!r}")
    if not any(choice.get("finish_reason") for choice in deltas):
        raise BenchError(f"{check}: no finish_reason: {text[-300:]!r}")
    if check == "sse-conv":  # the converter names the stream after the Anthropic message
        if not str(chunks[0].get("id", "")).startswith("msg_"):
            raise BenchError(f"sse-conv: not converted from Anthropic events: {events[0]!r}")
        if not any(chunk.get("usage") for chunk in chunks):
            raise BenchError(f"sse-conv: no usage chunk: {text[-300:]!r}")


def _check_messages(text: str) -> None:
    """An Anthropic Messages stream: message_start first, message_stop last."""
    events = [json.loads(event) for event in _data_events(text)]
    kinds = [event.get("type") for event in events]
    if not kinds or kinds[0] != "message_start" or kinds[-1] != "message_stop":
        raise BenchError(f"messages-sse: not message_start ... message_stop: {text[:200]!r}")


def validate(url: str, body: bytes, check: str, api_key: str = API_KEY) -> Answer:
    """Check that one scenario answers in the expected wire format before it is measured.

    `check`: "chat", "sse", "sse-conv" (an OpenAI stream converted from Anthropic events),
    "messages-sse" (the upstream's own Anthropic stream) or "embeddings".
    """
    answer = post(url, body, api_key=api_key)
    if answer.status != 200:
        raise BenchError(f"{check}: HTTP {answer.status}: {answer.body[:200]!r}")
    text = answer.body.decode(errors="replace")
    if check in ("sse", "sse-conv"):
        _check_chunks(check, text)
    elif check == "messages-sse":
        _check_messages(text)
    else:
        expected = {"chat": "chat.completion", "embeddings": "list"}[check]
        if json.loads(answer.body).get("object") != expected:
            raise BenchError(f"{check}: object is not {expected!r}: {answer.body[:200]!r}")
    return answer


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "0A":  # 0A = LISTEN
                    inodes.add(fields[9])
    return inodes


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():  # a child may belong to any thread
        with contextlib.suppress(FileNotFoundError):
            for child in (task / "children").read_text().split():
                found.extend(_descendants(int(child)))
    return found


def server_pid(root_pid: int, port: int) -> int:
    """The process under `root_pid` (e.g. below `uv run`) that owns the listening socket."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    for pid in _descendants(root_pid):
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            if any(os.readlink(fd) in targets for fd in fd_dir.iterdir()):
                return pid
        except (FileNotFoundError, PermissionError):
            continue
    raise BenchError(f"no process under pid {root_pid} listens on port {port}")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for pid {pid}")


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    errors: int  # connect/read/write/timeout errors and non-2xx/3xx answers

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s


_VARY_RUNS = iter(range(1, 1 << 30))  # each varied wrk run counts seeds from a base of its own


def varied(body: bytes, number: int) -> bytes:
    """``body`` with ``number`` before the text of its first message content (or its input): a
    request no cache has seen (what post.lua does with $BENCH_VARY_BASE)."""
    for marker in (b'"content":"', b'"input":"'):
        head, found, tail = body.partition(marker)
        if found:
            return head + found + b"%d " % number + tail
    raise ValueError("a body without message content or input")


def run_wrk(
    url: str, body_file: Path, connections: int, duration_s: float, api_key: str = API_KEY,
    vary: bool = False,
) -> WrkResult:
    """One bounded wrk run (1 thread) against a 127.0.0.1 URL; with ``vary`` every request
    differs from every earlier one (see post.lua)."""
    assert split_url(url)[0] == "127.0.0.1", "load generators only target 127.0.0.1"
    argv = [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
        "--timeout", "10s", "-s", str(WRK_SCRIPT), url,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_API_KEY": api_key}
    if vary:
        env["BENCH_VARY_BASE"] = str(next(_VARY_RUNS) * 1_000_000_000)
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=duration_s + 30, check=False
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    errors = sum(raw[k] for k in raw if k.startswith("err_"))
    return WrkResult(
        requests=raw["requests"],
        duration_s=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        errors=errors,
    )


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def core_user_s(core: int) -> float:
    """User+nice CPU seconds spent on one core since boot (all processes); 0 if no such core."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            fields = line.split()
            return (int(fields[1]) + int(fields[2])) / CLOCK_TICKS
    return 0.0


def process_cpu_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS
