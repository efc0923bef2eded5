"""The benchmark issue's targets, checked against the results of one run, and what a variant's
plugins cost compared with the plain gateway row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from _report import TargetResult

PLAIN = "compatgate"  # the row the plugin variants are compared with
FLOOR = "aiohttp"  # the raw aiohttp relay: the throughput floor of the targets
FLAT_MIB = 2.0  # RSS "flat": at most this much growth over the second half of the soak
SOAK_GOAL = 100_000
JUDGED = {True: "met", False: "MISSED", None: "not judged"}

Verdict = tuple[str, bool | None]  # (what was measured, target met; None: too few requests)


@dataclass(frozen=True)
class Context:
    by_name: dict[str, TargetResult]


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _throughput(result: TargetResult, context: Context) -> Verdict | None:
    floor = context.by_name.get(FLOOR)
    if floor is None or floor.status != "ok":
        return None
    shares = {
        name: result.metrics[key] / floor.metrics[key]
        for name, key in (("chat", "chat_rps"), ("SSE", "sse_rps"))
        if key in result.metrics and floor.metrics.get(key)
    }
    if not shares:
        return None
    text = ", ".join(f"{name} {_pct(share)}" for name, share in shares.items())
    return text, min(shares.values()) >= 0.8


def _added(keys: tuple[tuple[str, str], ...], limit: float) -> Callable[..., Verdict | None]:
    def evaluate(result: TargetResult, _: Context) -> Verdict | None:
        added = {name: result.added[key] for name, key in keys if key in result.added}
        if not added:
            return None
        text = ", ".join(f"{name} {value:+.3f}" for name, value in added.items())
        return text, max(added.values()) < limit

    return evaluate


def _converted(result: TargetResult, _: Context) -> Verdict | None:
    added, metrics = result.added, result.metrics
    if "conv_p50_ms" not in added or not added.get("sse_p50_ms") or not metrics.get("conv_rps"):
        return None
    latency = added["conv_p50_ms"] / added["sse_p50_ms"]
    throughput = metrics["sse_rps"] / metrics["conv_rps"]
    return f"p50 added ×{latency:.2f}, req/s ÷{throughput:.2f}", max(latency, throughput) <= 1.5


def _messages(result: TargetResult, _: Context) -> Verdict | None:
    """``/messages`` (converted and passed through): added p50 against the OpenAI SSE
    pass-through's, and CPU per request against its own."""
    added, metrics = result.added, result.metrics
    if not added.get("sse_p50_ms"):
        return None
    parts, ratios = [], []
    for name, prefix in (("msg", "msg"), ("msgn", "msgn")):
        if f"{prefix}_p50_ms" not in added:
            continue
        ratio = added[f"{prefix}_p50_ms"] / added["sse_p50_ms"]
        ratios.append(ratio)
        cpu, base = metrics.get(f"{prefix}_cpu_us"), metrics.get("sse_cpu_us")
        parts.append(f"{name} p50 added ×{ratio:.2f}" + (f", CPU ×{cpu / base:.2f}" if cpu and base else ""))
    return ("; ".join(parts), max(ratios) <= 1.5) if ratios else None


def _plugins(result: TargetResult, context: Context) -> Verdict | None:
    plain = context.by_name.get(PLAIN)
    if "billing" not in result.name or "plugin_check" not in result.raw or plain is None or plain.status != "ok":
        return None
    cost = plugin_cost(result, plain)
    if cost is None:
        return None
    cpu, rps = cost
    return f"CPU/req {cpu:+.0%}, chat req/s {rps:+.0%}", cpu < 0.25 and rps > -1 + 1 / 1.25


CACHE_HIT, CACHE_MISS = "compatgate+cache", "compatgate+cache-miss"
_CACHED = (("chat", "chat"), ("SSE", "sse"), ("conv", "conv"), ("emb", "emb"))


def _plain_ok(context: Context) -> TargetResult | None:
    plain = context.by_name.get(PLAIN)
    return plain if plain is not None and plain.status == "ok" else None


def _hit_latency(result: TargetResult, context: Context) -> Verdict | None:
    """A hit's p50 against the plain pass-through's: at most 0.2 ms more (it should be less)."""
    plain = _plain_ok(context)
    if result.name != CACHE_HIT or plain is None:
        return None
    deltas = {name: result.metrics[f"{key}_p50_ms"] - plain.metrics[f"{key}_p50_ms"] for name, key in _CACHED
              if f"{key}_p50_ms" in result.metrics and f"{key}_p50_ms" in plain.metrics}  # fmt: skip
    if not deltas:
        return None
    return ", ".join(f"{n} {d:+.3f}" for n, d in deltas.items()), max(deltas.values()) <= 0.2


def _hit_throughput(result: TargetResult, context: Context) -> Verdict | None:
    plain = _plain_ok(context)
    if result.name != CACHE_HIT or plain is None:
        return None
    ratios = {name: result.metrics[f"{key}_rps"] / plain.metrics[f"{key}_rps"] for name, key in _CACHED
              if result.metrics.get(f"{key}_rps") and plain.metrics.get(f"{key}_rps")}  # fmt: skip
    if not ratios:
        return None
    return ", ".join(f"{n} ×{r:.2f}" for n, r in ratios.items()), min(ratios.values()) >= 2.0


def _miss_cpu(result: TargetResult, context: Context) -> Verdict | None:
    plain = _plain_ok(context)
    if result.name != CACHE_MISS or plain is None:
        return None
    cpu, base = result.metrics.get("cpu_us_per_req"), plain.metrics.get("cpu_us_per_req")
    if not cpu or not base:
        return None
    return f"CPU/req {cpu / base - 1:+.1%} ({cpu:.0f} vs {base:.0f} µs)", cpu / base - 1 <= 0.10


def _flat(result: TargetResult, _: Context) -> Verdict | None:
    soak = result.raw.get("soak")
    drift = result.metrics.get("rss_drift_mib")
    if not isinstance(soak, dict) or drift is None:
        return None
    served, since = int(soak["requests_total"]), int(soak["drift_from_requests"])
    text = f"{drift:+.1f} MiB from {since:,} to {served:,} requests"
    return text, None if served < SOAK_GOAL else drift <= FLAT_MIB


def _per_stream(result: TargetResult, _: Context) -> Verdict | None:
    value = result.metrics.get("kib_per_stream")
    return None if value is None else (f"{value:.1f} KiB", value < 20)


GOALS: tuple[tuple[str, Callable[[TargetResult, Context], Verdict | None]], ...] = (
    ("pass-through req/s ≥ 80% of the raw aiohttp floor", _throughput),
    ("added p50 at 1 client < 1 ms", _added(
        (("chat", "chat_p50_ms"), ("SSE", "sse_p50_ms"), ("conv", "conv_p50_ms"),
         ("emb", "emb_p50_ms")), 1.0)),
    ("per-chunk overhead < 0.1 ms", _added((("SSE", "gap_ms"), ("conv", "conv_gap_ms")), 0.1)),
    ("converted SSE within 1.5× of pass-through", _converted),
    ("/messages added p50 within 1.5× of OpenAI SSE pass-through's", _messages),
    ("/messages per-chunk overhead < 0.1 ms", _added((("msg", "msg_gap_ms"), ("msgn", "msgn_gap_ms")), 0.1)),
    ("billing + Redis rate limiting cost < 25% more", _plugins),
    ("cache hit p50 ≤ pass-through + 0.2 ms", _hit_latency),
    ("cache hit req/s ≥ 2× pass-through", _hit_throughput),
    ("cache miss CPU/req ≤ 10% over no cache", _miss_cpu),
    (f"RSS flat over {SOAK_GOAL:,} requests (≤ {FLAT_MIB:g} MiB)", _flat),
    ("< 20 KiB per open stream", _per_stream),
)  # fmt: skip


def plugin_cost(result: TargetResult, plain: TargetResult) -> tuple[float, float] | None:
    """(relative CPU/req increase, relative chat req/s change) of `result` against `plain`."""
    cpu, base_cpu = result.metrics.get("cpu_us_per_req"), plain.metrics.get("cpu_us_per_req")
    rps, base_rps = result.metrics.get("chat_rps"), plain.metrics.get("chat_rps")
    if not (cpu and base_cpu and rps and base_rps):
        return None
    return cpu / base_cpu - 1, rps / base_rps - 1


def render_goals(results: list[TargetResult]) -> str:
    """A Markdown table: one row per target of the issue, one column per gateway row."""
    context = Context({r.name: r for r in results})
    gateways = [r for r in results if r.kind == "gateway" and r.status == "ok"]
    if not gateways:
        return ""
    rows = [["target", *(r.name for r in gateways)]]
    for text, evaluate in GOALS:
        cells = []
        for result in gateways:
            verdict = evaluate(result, context)
            cells.append("—" if verdict is None else f"{verdict[0]}: {JUDGED[verdict[1]]}")
        rows.append([text, *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in rows]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(["Targets of the benchmark issue:", "", *lines, *_cost_lines(results)])


def _cost_lines(results: list[TargetResult]) -> list[str]:
    plain = next((r for r in results if r.name == PLAIN and r.status == "ok"), None)
    out = []
    for result in results:
        if plain is None or result.status != "ok" or "plugin_check" not in result.raw:
            continue
        cost = plugin_cost(result, plain)
        if cost is None:
            continue
        parts = [f"{cost[0]:+.0%} CPU/req"]
        for key, label in (("sse_rps", "SSE"), ("conv_rps", "conv")):
            if result.metrics.get(key) and plain.metrics.get(key):
                parts.append(f"{result.metrics[key] / plain.metrics[key] - 1:+.0%} {label} req/s")
        parts.insert(1, f"{cost[1]:+.0%} chat req/s")
        if "chat_p50_ms" in result.metrics and "chat_p50_ms" in plain.metrics:
            delta = result.metrics["chat_p50_ms"] - plain.metrics["chat_p50_ms"]
            parts.append(f"{delta:+.3f} ms chat p50")
        redis = result.raw.get("redis_cpu_us_per_req")
        if isinstance(redis, (int, float)):
            parts.append(f"plus {redis:.0f} µs/req of Redis server CPU")
        out.append(f"- {result.name} vs {PLAIN}: " + ", ".join(parts))
    return ["", *out] if out else []
