"""Result model and reporting for run.py: the ratio table, latest.json and latest.png."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

MetricKind = Literal["latency", "throughput", "absolute"]  # absolute: no ratio vs direct


@dataclass(frozen=True)
class Metric:
    key: str
    header: str
    kind: MetricKind
    table: int  # 1: latency and throughput; 2: streaming and memory


METRICS: tuple[Metric, ...] = (
    Metric("chat_p50_ms", "chat p50 ms", "latency", 1),
    Metric("chat_p99_ms", "chat p99 ms", "latency", 1),
    Metric("sse_p50_ms", "SSE p50 ms", "latency", 1),
    Metric("sse_p99_ms", "SSE p99 ms", "latency", 1),
    Metric("conv_p50_ms", "conv SSE p50 ms", "latency", 1),
    Metric("conv_p99_ms", "conv SSE p99 ms", "latency", 1),
    Metric("emb_p50_ms", "emb p50 ms", "latency", 1),
    Metric("emb_p99_ms", "emb p99 ms", "latency", 1),
    Metric("chat_rps", "chat req/s", "throughput", 1),
    Metric("sse_rps", "SSE req/s", "throughput", 1),
    Metric("conv_rps", "conv req/s", "throughput", 1),
    Metric("emb_rps", "emb req/s", "throughput", 1),
    Metric("cpu_us_per_req", "CPU µs/req", "absolute", 1),
    Metric("ttft_ms", "TTFT ms", "latency", 2),
    Metric("gap_ms", "chunk gap ms", "latency", 2),
    Metric("conv_ttft_ms", "conv TTFT ms", "latency", 2),
    Metric("conv_gap_ms", "conv gap ms", "latency", 2),
    Metric("rss_warm_mib", "RSS warm MiB", "absolute", 2),
    Metric("rss_after_mib", "RSS after MiB", "absolute", 2),
    Metric("rss_100k_mib", "RSS soak MiB @requests", "absolute", 2),
    Metric("rss_growth_mib", "growth vs warm MiB", "absolute", 2),
    Metric("rss_drift_mib", "soak drift MiB", "absolute", 2),
    Metric("kib_per_stream", "KiB/open stream", "absolute", 2),
    Metric("msg_p50_ms", "msg p50 ms", "latency", 3),
    Metric("msg_p99_ms", "msg p99 ms", "latency", 3),
    Metric("msgn_p50_ms", "msgn p50 ms", "latency", 3),
    Metric("msgn_p99_ms", "msgn p99 ms", "latency", 3),
    Metric("msg_rps", "msg req/s", "throughput", 3),
    Metric("msgn_rps", "msgn req/s", "throughput", 3),
    Metric("msg_ttft_ms", "msg TTFT ms", "latency", 3),
    Metric("msg_gap_ms", "msg gap ms", "latency", 3),
    Metric("msgn_ttft_ms", "msgn TTFT ms", "latency", 3),
    Metric("msgn_gap_ms", "msgn gap ms", "latency", 3),
    Metric("sse_cpu_us", "SSE CPU µs/req", "absolute", 3),
    Metric("msg_cpu_us", "msg CPU µs/req", "absolute", 3),
    Metric("msgn_cpu_us", "msgn CPU µs/req", "absolute", 3),
)
TABLES = {
    1: "Latency at 1 connection (ms), throughput at 64 (req/s), CPU per request",
    2: "Streaming against the slow upstream (ms), memory (MiB; KiB per open stream)",
    3: "Anthropic's POST /messages, streamed (msg: converted to the OpenAI-type upstream; msgn: "
       "passed through to the Anthropic-type upstream), next to OpenAI SSE pass-through: latency, "
       "throughput, TTFT and chunk gap against the slow upstream, CPU per request of each scenario",
}


@dataclass
class TargetResult:
    name: str
    kind: str
    status: Literal["ok", "failed to start", "error", "skipped"] = "ok"
    detail: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    added: dict[str, float] = field(default_factory=dict)
    ratio: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. wrk errors, skipped scenarios
    requests_total: int = 0
    raw: dict[str, object] = field(default_factory=dict)


def compute_ratios(results: list[TargetResult]) -> None:
    """Fill `added` (target - direct) and `ratio` (target / direct) for every shared metric."""
    direct = next((r for r in results if r.kind == "direct" and r.metrics), None)
    if direct is None:
        return
    for result in results:
        for metric in METRICS:
            if metric.kind == "absolute":
                continue
            value, base = result.metrics.get(metric.key), direct.metrics.get(metric.key)
            if value is None or base is None or base == 0:
                continue
            result.ratio[metric.key] = value / base
            if metric.kind == "latency":
                result.added[metric.key] = value - base


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _count(requests: int) -> str:
    return f"{requests / 1000:.0f}k" if requests >= 10_000 else f"{requests:,}"


def _cell(result: TargetResult, metric: Metric) -> str:
    value = result.metrics.get(metric.key)
    if value is None:
        return "—"
    text = f"{value:+.1f}" if metric.key in ("rss_growth_mib", "rss_drift_mib") else _number(value)
    soak = result.raw.get("soak")
    if metric.key == "rss_100k_mib" and isinstance(soak, dict):
        text += f" @{_count(int(soak['requests_total']))}"
    if result.kind == "direct" or metric.key not in result.ratio:
        return text
    if metric.kind == "latency":
        text += (
            f" (+{result.added[metric.key]:.3f})"
            if result.added[metric.key] >= 0
            else (f" ({result.added[metric.key]:.3f})")
        )
    return f"{text} ×{result.ratio[metric.key]:.2f}"


def _table(results: list[TargetResult], metrics: list[Metric]) -> list[str]:
    headers = ["target", "status", *(m.header for m in metrics)]
    rows = [
        [r.name, r.status, *(_cell(r, m) if r.status == "ok" else "—" for m in metrics)]
        for r in results
    ]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(row) for row in rows)
    return out


def render_table(results: list[TargetResult]) -> str:
    """Two Markdown tables (one row per target, one column per metric), then the notes."""
    out: list[str] = []
    for number, title in TABLES.items():
        out += [f"{title}:", "", *_table(results, [m for m in METRICS if m.table == number]), ""]
    notes = [f"- {r.name}: {r.detail}" for r in results if r.detail]
    notes += [f"- {r.name}: {note}" for r in results for note in r.notes]
    return "\n".join(out + notes).rstrip()


def write_json(path: Path, meta: dict[str, object], results: list[TargetResult]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "meta": meta,
        "metrics": [asdict(m) for m in METRICS],
        "targets": [asdict(r) for r in results],
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


Panel = tuple[str, str, list[str], bool]  # (title, "added" or "metrics", keys, log scale)
PANELS: tuple[Panel, ...] = (
    ("added p50 vs direct, ms (1 connection; lower is better)", "added",
     ["chat_p50_ms", "sse_p50_ms", "conv_p50_ms", "emb_p50_ms"], False),
    ("req/s at 64 connections (log scale; higher is better)", "metrics",
     ["chat_rps", "sse_rps", "conv_rps", "emb_rps"], True),
    ("streaming: added vs direct, ms (lower is better)", "added",
     ["ttft_ms", "gap_ms", "conv_ttft_ms", "conv_gap_ms"], False),
    ("RSS, MiB (warm-up, after the fast phase, after the soak)", "metrics",
     ["rss_warm_mib", "rss_after_mib", "rss_100k_mib"], False),
    ("KiB per open stream (1,000 held streams; lower is better)", "metrics",
     ["kib_per_stream"], False),
    ("CPU µs per request (lower is better)", "metrics", ["cpu_us_per_req"], False),
)  # fmt: skip


def write_png(path: Path, results: list[TargetResult]) -> bool:
    """Six panels: added latency, throughput, streaming, RSS, KiB per stream, CPU per request.
    False without matplotlib or without anything to plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    measured = [r for r in results if r.status == "ok" and r.metrics]
    if not any(r.kind != "direct" and r.added for r in measured):
        return False
    colors = {r.name: f"C{i}" for i, r in enumerate(measured)}  # same colour in every panel
    figure, axes = plt.subplots(2, 3, figsize=(20, 10))
    for axis, (title, attribute, keys, log) in zip(axes.flat, PANELS, strict=True):
        shown = [
            r
            for r in measured
            if (attribute == "metrics" or r.kind != "direct")  # direct adds nothing to itself
            and any(k in getattr(r, attribute) for k in keys)
        ]
        width = 0.8 / max(1, len(shown))
        for i, result in enumerate(shown):
            values: dict[str, float] = getattr(result, attribute)
            xs = [k + i * width for k in range(len(keys))]
            heights = [values.get(k, 0.0) for k in keys]
            axis.bar(xs, heights, width, label=result.name, color=colors[result.name])
        axis.set_xticks([k + width * (len(shown) - 1) / 2 for k in range(len(keys))])
        axis.set_xticklabels(keys, fontsize=8)
        axis.set_title(title, fontsize=10)
        if shown:
            axis.legend(fontsize=7)
        if log:
            axis.set_yscale("log")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return True
