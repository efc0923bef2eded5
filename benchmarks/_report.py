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


METRICS: tuple[Metric, ...] = (
    Metric("chat_p50_ms", "chat p50 ms", "latency"),
    Metric("chat_p99_ms", "chat p99 ms", "latency"),
    Metric("sse_p50_ms", "SSE p50 ms", "latency"),
    Metric("sse_p99_ms", "SSE p99 ms", "latency"),
    Metric("emb_p50_ms", "emb p50 ms", "latency"),
    Metric("emb_p99_ms", "emb p99 ms", "latency"),
    Metric("chat_rps", "chat req/s", "throughput"),
    Metric("sse_rps", "SSE req/s", "throughput"),
    Metric("emb_rps", "emb req/s", "throughput"),
    Metric("ttft_ms", "TTFT ms", "latency"),
    Metric("gap_ms", "chunk gap ms", "latency"),
    Metric("cpu_us_per_req", "CPU µs/req", "absolute"),
    Metric("rss_warm_mib", "RSS warm MiB", "absolute"),
    Metric("rss_after_mib", "RSS after MiB", "absolute"),
)


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


def _cell(result: TargetResult, metric: Metric) -> str:
    value = result.metrics.get(metric.key)
    if value is None:
        return "—"
    text = _number(value)
    if result.kind == "direct" or metric.key not in result.ratio:
        return text
    if metric.kind == "latency":
        text += (
            f" (+{result.added[metric.key]:.3f})"
            if result.added[metric.key] >= 0
            else (f" ({result.added[metric.key]:.3f})")
        )
    return f"{text} ×{result.ratio[metric.key]:.2f}"


def render_table(results: list[TargetResult]) -> str:
    """A Markdown table: one row per target, one column per metric."""
    headers = ["target", "status", *(m.header for m in METRICS)]
    rows = [
        [r.name, r.status, *(_cell(r, m) if r.status == "ok" else "—" for m in METRICS)]
        for r in results
    ]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(row) for row in rows)
    notes = [f"- {r.name}: {r.detail}" for r in results if r.detail]
    notes += [f"- {r.name}: {note}" for r in results for note in r.notes]
    return "\n".join(out + ([""] + notes if notes else []))


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


def write_png(path: Path, results: list[TargetResult]) -> bool:
    """Added latency (ms) and throughput (req/s, log scale); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    measured = [r for r in results if r.status == "ok" and r.metrics]
    added = [r for r in measured if r.kind != "direct" and r.added]
    if not added:
        return False
    panels = (
        ("added latency vs direct, ms (1 connection; lower is better)", added, "added",
         ["chat_p50_ms", "sse_p50_ms", "emb_p50_ms", "ttft_ms", "gap_ms"]),
        ("req/s at 64 connections (log scale; higher is better)", measured, "metrics",
         ["chat_rps", "sse_rps", "emb_rps"]),
    )  # fmt: skip
    colors = {r.name: f"C{i}" for i, r in enumerate(measured)}  # same colour in both panels
    figure, axes = plt.subplots(1, 2, figsize=(15, 5.5))
    for axis, (title, shown, attribute, keys) in zip(axes, panels, strict=True):
        width = 0.8 / len(shown)
        for i, result in enumerate(shown):
            values: dict[str, float] = getattr(result, attribute)
            xs = [k + i * width for k in range(len(keys))]
            heights = [values.get(k, 0.0) for k in keys]
            axis.bar(xs, heights, width, label=result.name, color=colors[result.name])
        axis.set_xticks([k + width * (len(shown) - 1) / 2 for k in range(len(keys))])
        axis.set_xticklabels(keys)
        axis.set_title(title)
        axis.legend(fontsize=8)
        if attribute == "metrics":
            axis.set_yscale("log")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
