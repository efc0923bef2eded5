"""Measurement primitives for run.py: processes, readiness, wrk, the SSE timing probe, RSS."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import os
import signal
import statistics
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = Path(__file__).resolve().parent / "post.lua"
API_KEY = "sk-bench"
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}


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


def post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    host, port, path = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body, HEADERS)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(url: str, body: bytes, timeout_s: float, process: Process | None) -> None:
    """Poll `url` with a JSON chat request until it answers 200 (or the process dies)."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.popen.poll() is not None:
            code = process.popen.returncode
            raise BenchError(f"exited with code {code}: {process.log_tail()}")
        try:
            status, answer = post(url, body, timeout=2.0)
            if status == 200:
                return
            last_error = f"HTTP {status}: {answer[:200]!r}"
        except OSError as error:
            last_error = str(error)
        time.sleep(0.2)
    raise BenchError(f"not ready after {timeout_s:.0f}s ({last_error})")


def validate(url: str, body: bytes, scenario: str) -> None:
    """Check that one scenario answers in OpenAI wire format before it is measured."""
    status, answer = post(url, body)
    if status != 200:
        raise BenchError(f"{scenario}: HTTP {status}: {answer[:200]!r}")
    text = answer.decode(errors="replace")
    if scenario == "sse":
        events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        if not events or events[-1] != "[DONE]":
            raise BenchError(f"sse: stream does not end with data: [DONE]: {text[-200:]!r}")
        if json.loads(events[0]).get("object") != "chat.completion.chunk":
            raise BenchError(f"sse: first event is not a chat.completion.chunk: {events[0]!r}")
        return
    expected = {"chat": "chat.completion", "embeddings": "list"}[scenario]
    if json.loads(answer).get("object") != expected:
        raise BenchError(f"{scenario}: object is not {expected!r}: {answer[:200]!r}")


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


def run_wrk(url: str, body_file: Path, connections: int, duration_s: float) -> WrkResult:
    """One bounded wrk run (1 thread) against a 127.0.0.1 URL."""
    assert split_url(url)[0] == "127.0.0.1", "load generators only target 127.0.0.1"
    argv = [
        "wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
        "--timeout", "10s", "-s", str(WRK_SCRIPT), url,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_API_KEY": API_KEY}
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


@dataclass(frozen=True)
class StreamTiming:
    streams: int
    ttft_p50_ms: float
    ttft_mean_ms: float
    gap_mean_ms: float
    gap_p99_ms: float


def _one_stream(
    conn: http.client.HTTPConnection, path: str, body: bytes
) -> tuple[float, list[float]]:
    """Send one streamed request; return (start, arrival time of each data event but [DONE])."""
    start = time.perf_counter()
    conn.request("POST", path, body, HEADERS)
    response = conn.getresponse()
    if response.status != 200:
        raise BenchError(f"slow stream: HTTP {response.status}: {response.read()[:200]!r}")
    stamps: list[float] = []
    saw_done = False
    while line := response.readline():
        if line.startswith(b"data:"):
            now = time.perf_counter()
            if line.strip() == b"data: [DONE]":
                saw_done = True
            else:
                stamps.append(now)
    if not saw_done:
        raise BenchError("slow stream: no data: [DONE]")
    return start, stamps


def stream_probe(url: str, body: bytes, streams: int, content_chunks: int) -> StreamTiming:
    """Sequential streamed requests on one keep-alive connection, timing every SSE event.

    Time to first token = request sent -> first `data:` line. The per-chunk gap is the mean
    spacing of the first `content_chunks` events (the upstream spaces those evenly).
    """
    host, port, path = split_url(url)
    assert host == "127.0.0.1", "load generators only target 127.0.0.1"
    conn = http.client.HTTPConnection(host, port, timeout=30)
    ttfts: list[float] = []
    gaps: list[float] = []
    try:
        for _ in range(streams):
            start, stamps = _one_stream(conn, path, body)
            if len(stamps) < content_chunks:
                raise BenchError(f"slow stream: {len(stamps)} events < {content_chunks}")
            ttfts.append(stamps[0] - start)
            timed = stamps[:content_chunks]
            gaps.extend(b - a for a, b in itertools.pairwise(timed))
    finally:
        conn.close()
    gaps.sort()
    return StreamTiming(
        streams=streams,
        ttft_p50_ms=statistics.median(ttfts) * 1000,
        ttft_mean_ms=statistics.fmean(ttfts) * 1000,
        gap_mean_ms=statistics.fmean(gaps) * 1000,
        gap_p99_ms=gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))] * 1000,
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
