"""What the Prometheus plugin tests share: keys, configurations, upstream answers, scraping."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx2
import orjson
from prometheus_client.parser import text_string_to_metric_families

from compatgate.testing import ServedGateway

UPSTREAM_KEY = "sk-upstream-PROM-SECRET-42"
CLIENT_KEY = "sk-client-prom-1"
MESSAGES = [{"role": "user", "content": "Say hi"}]


def gateway_config(upstream_url: str, prometheus: dict[str, Any] | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "gateway": {"api_keys": [CLIENT_KEY]},
        "providers": {
            "up": {"type": "openai", "base_url": f"{upstream_url}/v1", "api_key": UPSTREAM_KEY,
                   "read_timeout": 5.0, "connect_timeout": 2.0},
        },
        "models": [{"name": "gpt-4o", "provider": "up", "upstream_model": "gpt-4o-2024-08-06"}],
    }
    if prometheus is not None:
        config["plugins"] = {"prometheus": prometheus}
    return config


def answer(prompt: int = 11, completion: int = 3, cached: int | None = None, reasoning: int | None = None) -> dict:
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    if reasoning is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return {
        "id": "chatcmpl-p1", "object": "chat.completion", "created": 1, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": usage,
    }


def sse_stream(words: list[str], *, usage: tuple[int, int] | None = (7, 4), finish: bool = True) -> bytes:
    """An OpenAI chat stream: one chunk per word, a finish chunk, a usage chunk, [DONE]."""
    base = {"id": "chatcmpl-s1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-2024-08-06"}
    events = [{**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]} for w in words]
    if finish:
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    if usage is not None:
        events.append({**base, "choices": [], "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                                          "total_tokens": sum(usage)}})
    body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    return body + (b"data: [DONE]\n\n" if finish else b"")


class Served(ServedGateway):
    """A gateway served on loopback."""

    default_key = CLIENT_KEY


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str, token: str | None = None) -> Samples:
    """Every sample of a metrics endpoint, by (name, labels)."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx2.get(url, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return parse(response.text)


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def eventually(read: Callable[[], Samples], check: Callable[[Samples], bool], timeout: float = 5.0) -> Samples:
    """Scrape until ``check`` holds (a stream is recorded after its last byte, so the client
    may see the end first); the last scrape, which fails the caller's assertions if it never held."""
    deadline = time.monotonic() + timeout
    samples = read()
    while not check(samples) and time.monotonic() < deadline:
        time.sleep(0.02)
        samples = read()
    return samples
