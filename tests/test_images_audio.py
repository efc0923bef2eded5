"""Images, audio and moderations through the official SDK, passed through to an OpenAI-type
upstream; multipart uploads streamed with bounded memory."""

from __future__ import annotations

import hashlib
import re
import tracemalloc
from collections.abc import Iterator

import httpx2
import openai
import pytest

from support import CLIENT_KEY, UPSTREAM_KEY, Served, gateway_config

from compatgate.testing import OpenAISchema, serve

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def field(body: bytes, name: str) -> str | None:
    match = re.search(rb'name="' + re.escape(name.encode()) + rb'"\r\n\r\n(.*?)\r\n--', body, re.DOTALL)
    return match.group(1).decode() if match else None


def test_moderations(gw: Served, upstream, openai_schema: OpenAISchema):
    fake, _ = upstream
    answer = {"id": "modr-1", "model": "omni-moderation-latest",
              "results": [{"flagged": False, "categories": {}, "category_scores": {}}]}
    fake.handler = fake.json_reply(answer)
    result = gw.client().moderations.create(model="gpt-4o", input="hello")
    assert result.id == "modr-1" and result.results[0].flagged is False
    sent = fake.received[-1]
    assert sent.path == "/v1/moderations" and sent.json == {"model": "gpt-4o-2024-08-06", "input": "hello"}
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    record = gw.records(1)[0]
    assert (record.endpoint, record.outcome, record.status_code) == ("moderations", "ok", 200)


@pytest.mark.parametrize("response_format", ["b64_json", "url"])
def test_images_generate(gw: Served, upstream, openai_schema: OpenAISchema, response_format):
    fake, _ = upstream
    image = {"b64_json": "aGVsbG8="} if response_format == "b64_json" else {"url": "https://example.com/a.png"}
    answer = {"created": 1, "data": [image], "usage": {"input_tokens": 5, "output_tokens": 10, "total_tokens": 15,
                                                       "input_tokens_details": {"text_tokens": 5, "image_tokens": 0}}}
    fake.handler = fake.json_reply(answer)
    result = gw.client().images.generate(model="gpt-4o", prompt="a cat", response_format=response_format)
    assert getattr(result.data[0], response_format) == image[response_format]
    assert fake.received[-1].json == {"model": "gpt-4o-2024-08-06", "prompt": "a cat",
                                      "response_format": response_format}
    openai_schema.validate("ImagesResponse", answer)
    assert gw.records(1)[0].total_tokens == 15


def test_images_edit_multipart(gw: Served, upstream):
    fake, _ = upstream
    fake.handler = fake.json_reply({"created": 1, "data": [{"b64_json": "eA=="}]})
    result = gw.client().images.edit(model="gpt-4o", image=("cat.png", PNG, "image/png"), prompt="add a hat")
    assert result.data[0].b64_json == "eA=="
    sent = fake.received[-1]
    assert sent.path == "/v1/images/edits" and sent.headers["content-type"].startswith("multipart/form-data")
    assert field(sent.body, "model") == "gpt-4o-2024-08-06" and field(sent.body, "prompt") == "add a hat"
    assert PNG in sent.body and b'filename="cat.png"' in sent.body


TRANSCRIPTS = {
    "json": ("application/json", b'{"text": "hello world"}'),
    "verbose_json": ("application/json", b'{"text": "hello world", "language": "english", "duration": 1.5}'),
    "text": ("text/plain; charset=utf-8", b"hello world\n"),
    "srt": ("text/plain; charset=utf-8", b"1\n00:00:00,000 --> 00:00:01,500\nhello world\n\n"),
    "vtt": ("text/plain; charset=utf-8", b"WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nhello world\n\n"),
}


async def _transcript(request, send) -> None:
    media_type, content = TRANSCRIPTS[field(request.body, "response_format") or "json"]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", media_type.encode())]})
    await send({"type": "http.response.body", "body": content})


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK's translations overloads
@pytest.mark.parametrize("response_format", sorted(TRANSCRIPTS))
@pytest.mark.parametrize("kind", ["transcriptions", "translations"])
def test_audio_every_response_format(gw: Served, upstream, response_format, kind):
    fake, _ = upstream
    fake.handler = _transcript
    audio = b"RIFF" + b"\x00" * 4000
    endpoint = getattr(gw.client().audio, kind)
    extra = {"timestamp_granularities": ["word", "segment"]} if kind == "transcriptions" else {}
    result = endpoint.create(model="gpt-4o", file=("a.wav", audio, "audio/wav"),
                             response_format=response_format, **extra)
    media_type, content = TRANSCRIPTS[response_format]
    if media_type == "application/json":
        assert result.text == "hello world"
    else:
        assert result == content.decode()
    sent = fake.received[-1]
    assert sent.path == f"/v1/audio/{kind}" and audio in sent.body
    assert field(sent.body, "model") == "gpt-4o-2024-08-06"
    if extra:
        assert sent.body.count(b'name="timestamp_granularities[]"') == 2
    record = gw.records(1)[0]
    assert (record.endpoint, record.outcome) == (f"audio.{kind}", "ok")


def test_audio_speech_streams_binary(gw: Served, upstream):
    fake, _ = upstream
    audio = bytes(range(256)) * 2000

    async def speech(request, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"audio/mpeg")]})
        for start in range(0, len(audio), 65536):
            await send({"type": "http.response.body", "body": audio[start:start + 65536], "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    fake.handler = speech
    with gw.client().audio.speech.with_streaming_response.create(
        model="gpt-4o", voice="alloy", input="hello", response_format="mp3"
    ) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        received = b"".join(response.iter_bytes())
    assert received == audio
    assert fake.received[-1].json["voice"] == "alloy"
    record = gw.records(1)[0]
    assert (record.endpoint, record.outcome, record.streamed) == ("audio.speech", "ok", False)


class CountingUpstream:
    """An upstream that reads a multipart upload without keeping it: its size and hash."""

    def __init__(self) -> None:
        self.size = 0
        self.digest = hashlib.sha256()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            body = message.get("body", b"")
            self.size += len(body)
            self.digest.update(body)
            if not message.get("more_body"):
                break
        content = b'{"text": "long"}'
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": content})


def upload(boundary: str, megabytes: int, digest: hashlib._Hash) -> Iterator[bytes]:
    yield (f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-4o\r\n'
           f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="long.wav"\r\n'
           f"Content-Type: audio/wav\r\n\r\n").encode()
    block = bytes(range(256)) * 4096  # 1 MiB
    for _ in range(megabytes):
        digest.update(block)
        yield block
    yield f"\r\n--{boundary}--\r\n".encode()


def test_large_upload_is_streamed_with_bounded_memory(make_gateway):
    counting = CountingUpstream()
    with serve(counting) as url:
        gw = make_gateway(gateway_config(url, max_upload_bytes=64 * 1024 * 1024))
        sent = hashlib.sha256()
        tracemalloc.start()
        try:
            response = httpx2.post(
                f"{gw.url}/audio/transcriptions", content=upload("b0und4ry", 50, sent), timeout=60,
                headers={"authorization": f"Bearer {CLIENT_KEY}",
                         "content-type": "multipart/form-data; boundary=b0und4ry"},
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status_code == 200 and response.json() == {"text": "long"}
    assert counting.size > 50 * 1024 * 1024
    assert peak < 16 * 1024 * 1024, f"peak traced memory {peak} bytes for a 50 MiB upload"


def test_upload_size_limit(make_gateway, upstream):
    _, url = upstream
    gw = make_gateway(gateway_config(url, max_upload_bytes=1024 * 1024))
    with pytest.raises(openai.APIStatusError) as caught:
        gw.client().audio.transcriptions.create(model="gpt-4o", file=("a.wav", b"x" * (2 * 1024 * 1024)))
    assert caught.value.status_code == 413
    response = httpx2.post(
        f"{gw.url}/audio/transcriptions", content=upload("b0und4ry", 2, hashlib.sha256()), timeout=10,
        headers={"authorization": f"Bearer {CLIENT_KEY}", "content-type": "multipart/form-data; boundary=b0und4ry"},
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert gw.records(2)[1].status_code == 413


def test_unsupported_provider_and_family(make_gateway, upstream):
    _, url = upstream
    config = gateway_config(url, response_store="off")
    config["providers"]["demo"] = {"type": "demo"}
    config["models"].append({"name": "demo", "provider": "demo"})
    gw = make_gateway(config)
    with pytest.raises(openai.NotFoundError) as caught:
        gw.client().images.generate(model="demo", prompt="a cat")
    assert caught.value.code == "unsupported_endpoint"
    assert gw.client().responses.create(model="demo", input="hi").output_text
    for path in ("/files", "/batches", "/fine_tuning/jobs"):
        response = httpx2.get(f"{gw.url}{path}", headers={"authorization": f"Bearer {CLIENT_KEY}"})
        assert response.status_code == 404 and response.json()["error"]["code"] == "unsupported_endpoint"
