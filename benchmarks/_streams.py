"""Stream measurements for run.py: the SSE timing probe and the held-streams memory probe."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from _measure import API_KEY, BenchError, headers, split_url, varied

# A data line that carries text: an OpenAI chunk's `"content":"x`, an Anthropic text_delta's
# `"text":"x` (empty texts, the role chunk and message_start do not match).
CONTENT = re.compile(rb'"(?:content|text)":"[^"]')
END_LINES = (b"data: [DONE]", b'data: {"type":"message_stop"}')


@dataclass(frozen=True)
class StreamTiming:
    streams: int
    ttft_p50_ms: float
    ttft_mean_ms: float
    gap_mean_ms: float
    gap_p99_ms: float


def _one_stream(
    conn: http.client.HTTPConnection, path: str, body: bytes, api_key: str
) -> tuple[float, list[float]]:
    """Send one streamed request; return (start, arrival time of each content event)."""
    start = time.perf_counter()
    conn.request("POST", path, body, headers(api_key))
    response = conn.getresponse()
    if response.status != 200:
        raise BenchError(f"slow stream: HTTP {response.status}: {response.read()[:200]!r}")
    stamps: list[float] = []
    ended = False
    while line := response.readline():
        if line.startswith(b"data:"):
            now = time.perf_counter()
            if line.strip() in END_LINES:
                ended = True
            elif CONTENT.search(line):
                stamps.append(now)
    if not ended:
        raise BenchError("slow stream: no data: [DONE] nor message_stop")
    return start, stamps


def stream_probe(
    url: str, body: bytes, streams: int, content_chunks: int, api_key: str = API_KEY,
    vary: bool = False,
) -> StreamTiming:
    """Sequential streamed requests on one keep-alive connection, timing every content event.

    Time to first token = request sent -> first `data:` line with text. The per-chunk gap is
    the mean spacing of the first `content_chunks` content events (the upstream spaces those
    evenly). Works for OpenAI chunk streams and for Anthropic Messages streams alike.
    """
    host, port, path = split_url(url)
    assert host == "127.0.0.1", "load generators only target 127.0.0.1"
    conn = http.client.HTTPConnection(host, port, timeout=30)
    ttfts: list[float] = []
    gaps: list[float] = []
    try:
        for n in range(streams):
            sent = varied(body, time.monotonic_ns() + n) if vary else body
            start, stamps = _one_stream(conn, path, sent, api_key)
            if len(stamps) < content_chunks:
                raise BenchError(f"slow stream: {len(stamps)} content events < {content_chunks}")
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


@dataclass
class HeldStreams:
    wanted: int
    opened: int = 0  # streams whose first data event arrived
    open_s: float = 0.0  # from the first connect until every stream had its first event
    errors: list[str] = field(default_factory=list)  # the first few failures


Writers = list[asyncio.StreamWriter]


async def _read_until(reader: asyncio.StreamReader, seen: bytes, marker: bytes) -> bytes:
    while marker not in seen:
        data = await reader.read(4096)
        if not data:
            raise BenchError(f"closed before {marker!r}: {seen[:200]!r}")
        seen += data
    return seen


async def _open_one(
    host: str, port: int, request: bytes, writers: Writers, held: HeldStreams
) -> None:
    """Connect, send the streamed request and read until the first `data:` line."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writers.append(writer)
        writer.write(request)
        seen = await _read_until(reader, b"", b"\r\n\r\n")
        status = seen.split(b"\r\n", 1)[0].decode(errors="replace")
        if not status.startswith("HTTP/1.1 200"):
            with contextlib.suppress(asyncio.TimeoutError, BenchError):
                seen = await asyncio.wait_for(_read_until(reader, seen, b"}"), 1.0)
            body = seen.split(b"\r\n\r\n", 1)[-1]
            raise BenchError(f"{status}: {body[:200]!r}")
        await _read_until(reader, seen, b"data:")
        held.opened += 1
    except (OSError, BenchError) as error:
        if len(held.errors) < 3:
            held.errors.append(f"{type(error).__name__}: {error}")


async def _hold(
    url: str, body: bytes, count: int, api_key: str, timeout_s: float,
    while_open: Callable[[HeldStreams], None],
) -> HeldStreams:  # fmt: skip
    host, port, path = split_url(url)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers(api_key).items())
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    held = HeldStreams(count)
    writers: Writers = []
    started = time.perf_counter()
    tasks = [
        asyncio.create_task(_open_one(host, port, request, writers, held)) for _ in range(count)
    ]
    try:
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            held.errors.append(f"{len(pending)} streams without a first event after {timeout_s}s")
        held.open_s = time.perf_counter() - started
        while_open(held)
    finally:
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return held


def hold_streams(
    url: str, body: bytes, count: int, while_open: Callable[[HeldStreams], None],
    api_key: str = API_KEY, timeout_s: float = 60.0,
) -> HeldStreams:  # fmt: skip
    """Open `count` concurrent streamed requests, wait for the first event of each, call
    `while_open` (e.g. to read the server's RSS) while all are open, then close them all."""
    assert split_url(url)[0] == "127.0.0.1", "load generators only target 127.0.0.1"
    return asyncio.run(_hold(url, body, count, api_key, timeout_s, while_open))
