"""Micro-benchmark of conformance (`compatgate.conform`): microseconds per object.

    uv run python benchmarks/conform_bench.py [--number 20000]

For each kind of object, a conforming one (OpenAI's own bytes, or a server that already
conforms) and a non-conforming one (a recorded deviation of Ollama, vLLM, llama.cpp or LM
Studio, from tests/fixtures/nonconforming/), in ``auto`` and ``strict`` mode. Each call gets
its own freshly decoded object (conformance repairs in place), decoded before the clock
starts: the figure is what conformance adds to what the gateway already does (the decoding,
shown beside it for scale). Not run by the tests (speed is never asserted in tests).
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import struct
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from compatgate.conform import StreamConformer, conform_reply

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "nonconforming"
OPENAI_SSE = ROOT.parent / "shared" / "fixtures" / "openai-sse"

OPENAI_BODY = orjson.dumps({
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion", "created": 1741570283,
    "model": "gpt-4o-2024-08-06",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "The image shows a wooden boardwalk "
                 "path running through a lush green field or meadow.", "refusal": None, "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
    "service_tier": "default", "system_fingerprint": "fp_fc9f1d7035",
})


def _vector(dimensions: int = 1536) -> list[float]:
    rng = random.Random(7)
    values = [rng.gauss(0, 1) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values))
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *[v / norm for v in values])))


EMBEDDING = orjson.dumps({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": _vector()}],
                          "model": "text-embedding-3-small", "usage": {"prompt_tokens": 8, "total_tokens": 8}})


def _sse(path: Path, needle: bytes) -> bytes:
    """The first event payload of a recorded stream that contains ``needle``."""
    for block in path.read_bytes().split(b"\n\n"):
        if block.startswith(b"data: {") and needle in block:
            return block[6:]
    raise LookupError(f"{needle!r} not in {path}")


def _openai_chunk() -> bytes:
    for path in sorted(OPENAI_SSE.glob("*.bin")):
        try:
            return _sse(path, b'"delta":{"content":"')
        except LookupError:
            continue
    raise LookupError("no content chunk in the OpenAI recordings")


# label, kind ("stream:chat", "stream:completion" or an endpoint), raw bytes, request
CASES: list[tuple[str, str, bytes, dict[str, Any]]] = [
    ("chat chunk, OpenAI (conforming)", "stream:chat", _openai_chunk(), {}),
    ("chat chunk, vLLM (conforming)", "stream:chat", _sse(FIXTURES / "vllm" / "chat_stream.sse", b'"content":" capital"'), {}),
    ("chat chunk, Ollama finish_reason \"\"", "stream:chat", _sse(FIXTURES / "ollama" / "chat_stream_empty_finish.sse", b"there"), {}),
    ("chat chunk, vLLM no finish_reason key", "stream:chat", _sse(FIXTURES / "vllm" / "chat_stream_missing_finish_key.sse", b'" help"'), {}),
    ("chat chunk, llama.cpp logprobs w/o refusal", "stream:chat", _sse(FIXTURES / "llamacpp" / "chat_stream_logprobs_2025.sse", b'" capital"'), {}),
    ("completion chunk, vLLM (conforming)", "stream:completion", _sse(FIXTURES / "vllm" / "completion_stream.sse", b'" largest"'), {}),
    ("completion chunk, Ollama no logprobs", "stream:completion", _sse(FIXTURES / "ollama" / "completion_stream.sse", b'" capital"'), {}),
    ("chat body, OpenAI (conforming)", "chat.completions", OPENAI_BODY, {}),
    ("chat body, vLLM nulls", "chat.completions", (FIXTURES / "vllm" / "chat.json").read_bytes(), {}),
    ("chat body, Ollama no logprobs/refusal", "chat.completions", (FIXTURES / "ollama" / "chat.json").read_bytes(), {}),
    ("chat body, LM Studio tool call", "chat.completions", (FIXTURES / "lmstudio" / "chat_tools.json").read_bytes(), {}),
    ("completion body, vLLM nulls", "completions", (FIXTURES / "vllm" / "completion.json").read_bytes(), {}),
    ("embeddings 1536 floats (conforming)", "embeddings", EMBEDDING, {"encoding_format": "float"}),
    ("embeddings 1536 floats, base64 asked", "embeddings", EMBEDDING, {"encoding_format": "base64"}),
]


def _conform(kind: str, mode: str, request: dict[str, Any]) -> Callable[[dict[str, Any], bytes], bytes]:
    request = {"model": "m", **request}
    if kind.startswith("stream:"):
        conformer = StreamConformer(kind[7:], strict=mode == "strict", request=request)  # type: ignore[arg-type]
        return conformer.payload
    return lambda data, raw: conform_reply(kind, data, raw, mode=mode, request=request)  # type: ignore[arg-type]


def _per_call(kind: str, raw: bytes, mode: str, request: dict[str, Any], number: int) -> float:
    """Microseconds per call, best of 5 runs; every call gets its own freshly decoded copy
    (decoded before the clock starts: conformance repairs in place)."""
    conform = _conform(kind, mode, request)
    best = math.inf
    for _ in range(5):
        copies = [orjson.loads(raw) for _ in range(number)]
        gc.disable()
        start = time.perf_counter()
        for data in copies:
            conform(data, raw)
        best = min(best, time.perf_counter() - start)
        gc.enable()
    return best / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per repeat (default 20000)")
    args = parser.parse_args()
    print(f"{'object':46} {'bytes':>6} {'loads µs':>9} {'auto µs':>8} {'strict µs':>9}  auto relays")
    for label, kind, raw, request in CASES:
        number = max(200, args.number // 40) if kind == "embeddings" else args.number
        loads = min(timeit.repeat(lambda raw=raw: orjson.loads(raw), number=number, repeat=5)) / number * 1e6
        cost = {mode: _per_call(kind, raw, mode, request, number) for mode in ("auto", "strict")}
        same = _conform(kind, "auto", request)(orjson.loads(raw), raw) is raw
        print(f"{label:46} {len(raw):6} {loads:9.2f} {cost['auto']:8.2f} {cost['strict']:9.2f}  "
              f"{'upstream bytes' if same else 're-serialised'}")


if __name__ == "__main__":
    main()
