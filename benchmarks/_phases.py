"""The phases run.py measures each target in: fast (latency, throughput, CPU, memory soak),
slow (time to first token and chunk gap) and hold (memory per open stream)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from _configs import ledger_rows, redis_pid
from _measure import (
    BenchError,
    WrkResult,
    core_user_s,
    process_cpu_s,
    rss_mib,
    run_wrk,
    server_pid,
    validate,
)
from _report import TargetResult
from _streams import HeldStreams, hold_streams, stream_probe
from _targets import (
    CHAT,
    SCENARIOS,
    SLOW_CONTENT_CHUNKS,
    SSE,
    STREAMED,
    Request,
    Scenario,
    Session,
    Settings,
    StartError,
    Target,
    running,
)

NOISE_CORE = 1  # the targets' core: user CPU there not spent by the target is foreign load
NOISE_LIMIT_PCT = 5.0
WARM_STREAMS = 20  # streams opened and closed once before the RSS baseline of the hold phase


@dataclass(frozen=True)
class Upstreams:
    fast: str  # base URLs ending in /v1
    slow: str
    hold: str


@dataclass
class Loader:
    """wrk against one session, adding every run to the result."""

    session: Session
    scratch: Path
    result: TargetResult

    def wrk(self, label: str, request: Request, connections: int, seconds: float) -> WrkResult:
        body_file = self.scratch / f"{request.check}.json"
        body_file.write_bytes(request.body)
        url = self.session.base_url + request.path
        outcome = run_wrk(url, body_file, connections, seconds, self.session.api_key,
                          vary=self.session.vary)  # fmt: skip
        self.result.requests_total += outcome.requests
        self.result.raw[f"wrk_{label}_c{connections}"] = asdict(outcome)
        if outcome.errors:
            self.result.notes.append(f"{label} c={connections}: {outcome.errors} wrk errors")
        return outcome


def _cpu(pid: int | None) -> float:
    return sum(process_cpu_s(pid)) if pid is not None else 0.0


def measure_fast(loader: Loader, settings: Settings) -> int | None:
    """Validation, warm-up, RSS, latency at 1 connection, throughput at 64, RSS again.
    Returns the server's pid (None for direct)."""
    session, result = loader.session, loader.result
    usable: list[tuple[Scenario, Request]] = []
    for scenario in SCENARIOS:
        request = scenario.request_for(result.kind)
        if request is None:
            continue
        try:
            validate(session.base_url + request.path, request.body, request.check, session.api_key)
            usable.append((scenario, request))
        except (BenchError, ValueError) as error:
            result.notes.append(f"{scenario.prefix} not measured: {error}")
    if session.check is not None:  # raises, failing the row, when the plugins are inert
        chat = session.base_url + CHAT.request.path
        result.raw["plugin_check"] = session.check.verify(chat, CHAT.request.body, session.api_key)
    pid = None
    if session.process is not None:
        pid = server_pid(session.process.popen.pid, session.port)
        result.raw["server_pid"] = pid
    for scenario, request in usable:
        loader.wrk(scenario.prefix, request, 8, settings.warmup_s)
    if pid is not None:
        result.metrics["rss_warm_mib"] = rss_mib(pid)
    helper = redis_pid() if session.check is not None and session.check.redis else None
    started, core_before = time.monotonic(), core_user_s(NOISE_CORE)
    requests_before = result.requests_total
    cpu_before, helper_before = _cpu(pid), _cpu(helper)
    user_before = process_cpu_s(pid)[0] if pid is not None else 0.0
    spent: dict[str, list[float]] = {scenario.prefix: [0.0, 0.0] for scenario, _ in usable}  # CPU s, requests
    for scenario, request in usable:
        cpu = _cpu(pid)
        outcome = loader.wrk(scenario.prefix, request, 1, settings.latency_s)
        spent[scenario.prefix][0] += _cpu(pid) - cpu
        spent[scenario.prefix][1] += outcome.requests
        result.metrics[f"{scenario.prefix}_p50_ms"] = outcome.p50_ms
        result.metrics[f"{scenario.prefix}_p99_ms"] = outcome.p99_ms
    for scenario, request in usable:
        cpu = _cpu(pid)
        outcome = loader.wrk(scenario.prefix, request, settings.throughput_connections,
                             settings.throughput_s)  # fmt: skip
        spent[scenario.prefix][0] += _cpu(pid) - cpu
        spent[scenario.prefix][1] += outcome.requests
        result.metrics[f"{scenario.prefix}_rps"] = outcome.rps
    if pid is not None:  # each scenario's own CPU per request (the column mixes them all)
        for prefix, (seconds, requests) in spent.items():
            result.metrics[f"{prefix}_cpu_us"] = 1e6 * seconds / max(1.0, requests)
    user_after = process_cpu_s(pid)[0] if pid is not None else 0.0
    foreign = core_user_s(NOISE_CORE) - core_before - (user_after - user_before)
    foreign_pct = 100 * max(0.0, foreign) / (time.monotonic() - started)
    if pid is not None:  # direct loads core 0 only: other processes then move to core 1
        result.raw["core1_foreign_user_cpu_pct"] = round(foreign_pct, 1)
        if foreign_pct > NOISE_LIMIT_PCT:
            result.notes.append(f"noisy machine: other processes used {foreign_pct:.0f}% of core 1")
        measured = max(1, result.requests_total - requests_before)
        result.metrics["cpu_us_per_req"] = 1e6 * (_cpu(pid) - cpu_before) / measured
        result.metrics["rss_after_mib"] = rss_mib(pid)
        if helper is not None:  # Redis: the rate limiter's work outside the gateway process
            result.raw["redis_cpu_us_per_req"] = 1e6 * (_cpu(helper) - helper_before) / measured
    return pid


def measure_soak(loader: Loader, settings: Settings, pid: int) -> None:
    """Chat JSON at 64 connections until the target has served `soak_requests` in all, and at
    least a quarter of that in the soak itself. RSS is read at the start, at half the goal (when
    the fast phase served fewer) and at the end; the drift is the growth from the later of the
    first two to the end: over the second half of the requests, at least a quarter of them."""
    result = loader.result
    rps = result.metrics.get("chat_rps")
    if rps is None:
        result.notes.append("soak not run: chat not measured")
        return
    first = result.requests_total
    end = max(settings.soak_requests, first + settings.soak_requests // 4)
    started = time.monotonic()
    checkpoints = [(first, rss_mib(pid))]
    runs = 0
    for goal in (settings.soak_requests // 2, end):
        if goal <= result.requests_total:
            continue
        while result.requests_total < goal:
            left_s = settings.soak_max_s - (time.monotonic() - started)
            if left_s < 1:
                break
            seconds = min(left_s, max(1.0, 1.02 * (goal - result.requests_total) / rps))
            runs += 1
            rps = loader.wrk(f"soak{runs}", CHAT.request, 64, seconds).rps or rps
        checkpoints.append((result.requests_total, rss_mib(pid)))
    base = checkpoints[-2] if len(checkpoints) > 1 else checkpoints[0]
    rss = checkpoints[-1][1]
    result.metrics["rss_100k_mib"] = rss
    result.metrics["rss_growth_mib"] = rss - result.metrics.get("rss_warm_mib", rss)
    result.metrics["rss_drift_mib"] = rss - base[1]
    result.raw["soak"] = {
        "requests_total": result.requests_total,  # the count the RSS column is labelled with
        "soak_requests": result.requests_total - first,
        "drift_from_requests": base[0],
        "goal": end,
        "seconds": round(time.monotonic() - started, 1),
        "checkpoints": checkpoints,  # (requests served in all, RSS MiB)
    }
    if result.requests_total < end:
        result.notes.append(
            f"soak stopped at {result.requests_total:,} of {end:,} requests "
            f"({settings.soak_max_s} s time cap)"
        )


def measure_slow(session: Session, settings: Settings, result: TargetResult) -> None:
    """Time to first token and chunk gap of each streamed scenario the target serves."""
    for scenario in STREAMED:
        request = scenario.request_for(result.kind)
        if request is None:
            continue
        url, key = session.base_url + request.path, session.api_key
        prefix = "" if scenario is SSE else f"{scenario.prefix}_"
        try:
            vary = session.vary_streams
            stream_probe(url, request.body, 2, SLOW_CONTENT_CHUNKS, key, vary)  # warm-up
            timing = stream_probe(url, request.body, settings.streams, SLOW_CONTENT_CHUNKS, key, vary)
        except (BenchError, OSError) as error:
            if scenario is SSE:
                raise
            result.notes.append(f"{scenario.prefix} slow stream not measured: {error}")
            continue
        result.metrics[f"{prefix}ttft_ms"] = timing.ttft_p50_ms
        result.metrics[f"{prefix}gap_ms"] = timing.gap_mean_ms
        result.raw[f"slow_stream{'_' + scenario.prefix if prefix else ''}"] = asdict(timing)


def measure_held(session: Session, settings: Settings, result: TargetResult) -> None:
    """RSS with `held_streams` streams open at once (each has had its first event) minus RSS
    before, per stream. The upstream's hold port sends nothing after the first event."""
    assert session.process is not None
    pid = server_pid(session.process.popen.pid, session.port)
    url, body, key = session.base_url + SSE.request.path, SSE.request.body, session.api_key
    hold_streams(url, body, WARM_STREAMS, lambda _: None, key)  # first-stream allocations
    time.sleep(0.5)
    before = rss_mib(pid)
    readings: list[float] = []

    def read_rss(held: HeldStreams) -> None:
        readings.append(rss_mib(pid))

    held = hold_streams(url, body, settings.held_streams, read_rss, key)
    time.sleep(1.0)
    result.raw["held_streams"] = {
        **asdict(held),
        "rss_before_mib": before,
        "rss_open_mib": readings[0],
        "rss_closed_mib": rss_mib(pid),
    }
    if held.opened < held.wanted:
        result.notes.append(
            f"held streams: only {held.opened} of {held.wanted} had their first event "
            f"({'; '.join(held.errors)})"
        )
        return
    result.metrics["kib_per_stream"] = (readings[0] - before) * 1024 / held.opened


def _check_ledger(session: Session | None, result: TargetResult) -> None:
    """After a graceful stop the billing ledger holds a row for every request of the phase."""
    if session is None or session.check is None or session.check.database is None:
        return
    rows = ledger_rows(session.check.database)
    result.raw["billing_ledger_rows"] = rows
    if rows < result.requests_total:
        result.notes.append(f"billing ledger: {rows:,} rows for {result.requests_total:,} requests")


def measure(
    target: Target, upstreams: Upstreams, settings: Settings, scratch: Path, pin: list[str]
) -> TargetResult:
    result = TargetResult(target.name, target.kind)
    started = time.monotonic()
    session: Session | None = None
    try:
        with running(target, upstreams.fast, scratch, pin, "fast") as session:
            pid = measure_fast(Loader(session, scratch, result), settings)
            if pid is not None:
                measure_soak(Loader(session, scratch, result), settings, pid)
        _check_ledger(session, result)
        with running(target, upstreams.slow, scratch, pin, "slow") as session:
            measure_slow(session, settings, result)
        if target.launch is not None:
            with running(target, upstreams.hold, scratch, pin, "hold") as session:
                measure_held(session, settings, result)
    except StartError as error:
        result.status, result.detail = "failed to start", str(error)[:500]
    except (BenchError, OSError, ValueError, subprocess.SubprocessError) as error:
        result.status, result.detail = "error", f"{type(error).__name__}: {error}"[:500]
    result.raw["seconds"] = round(time.monotonic() - started, 1)
    return result
