"""Issue 14's billing defects 7 and 11, on SQLite and PostgreSQL: the upstream's key never
reaches the ledger; images, transcriptions and speech are charged their unit prices.

Before the operation table (commit 1ba4be6) priced /images and /audio calls cost 0 (the
upstream sends no token usage for them) and the ledger's error column kept an upstream's error
text, key included, when it came inside a stream.
"""

from __future__ import annotations

import httpx2
import orjson
import pytest
from billing_support import MESSAGES, PRICES, UPSTREAM_KEY, Database, billing_config

UNIT_PRICES = {
    **PRICES,
    "dall-e*": {"per_image": "0.04"},  # 40000 micro-units an image
    "whisper*": {"per_audio_second": "0.0001"},  # 100 micro-units a second
    "tts*": {"per_million_characters": 15},  # 15 micro-units a character
}


@pytest.fixture
def gw(make_gateway, upstream, db):
    config = billing_config(upstream[1], db, prices=UNIT_PRICES)
    config["models"] += [{"name": name, "provider": "up"} for name in ("dall-e-3", "whisper-1", "tts-1")]
    return make_gateway(config)


def _charged(db: Database, count: int) -> list[tuple]:
    return [(r[3], r[4], r[5], r[6]) for r in db.wait_for_rows(count)]  # status, cost, charged, reserved


def test_images_are_charged_per_image(gw, upstream, db):
    """Defect 11: two images cost twice the image price, reserved for the ``n`` asked."""
    fake, _ = upstream
    fake.handler = fake.json_reply({"created": 1, "data": [{"b64_json": "eA=="}, {"b64_json": "eQ=="}]})
    key_id, key = gw.create_key(budget="1")
    result = gw.client(key).images.generate(model="dall-e-3", prompt="a cat", n=2)
    assert len(result.data) == 2
    ((status, cost, charged, reserved),) = _charged(db, 1)
    assert status == "ok" and cost == charged == 80_000 and reserved >= 80_000
    assert db.key(key_id).spent_micro == 80_000


def test_a_budget_too_small_for_the_images_asked_is_refused(gw, upstream, db):
    """Defect 11: ``n`` images are reserved before the call; a key that cannot pay is 429."""
    fake, _ = upstream
    fake.handler = fake.json_reply({"created": 1, "data": [{"b64_json": "eA=="}]})
    _, key = gw.create_key(budget="0.1")  # two images and a half
    response = httpx2.post(f"{gw.url}/images/generations", json={"model": "dall-e-3", "prompt": "a cat", "n": 3},
                           headers={"authorization": f"Bearer {key}"}, timeout=10)
    assert response.status_code == 429 and response.json()["error"]["code"] == "insufficient_quota"
    assert fake.received == []


def test_transcriptions_are_charged_per_second_of_audio(gw, upstream, db):
    """Defect 11: a transcription is charged the duration the answer states."""
    fake, _ = upstream
    fake.handler = fake.json_reply({"text": "hello", "language": "english", "duration": 12.5})
    _, key = gw.create_key(budget="1")
    result = gw.client(key).audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF" + b"\0" * 400_000),
                                                        response_format="verbose_json")
    assert result.text == "hello"
    ((status, cost, charged, _),) = _charged(db, 1)
    assert status == "ok" and cost == charged == 1250


def test_speech_is_charged_per_character(gw, upstream, db):
    """Defect 11: speech is charged the characters of its ``input`` (its answer is audio)."""
    fake, _ = upstream

    async def audio(request, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"audio/mpeg")]})
        await send({"type": "http.response.body", "body": b"\xff\xfb" * 1000})

    fake.handler = audio
    _, key = gw.create_key(budget="1")
    speech = gw.client(key).audio.speech.create(model="tts-1", voice="alloy", input="hello world")
    assert speech.content == b"\xff\xfb" * 1000
    ((status, cost, charged, reserved),) = _charged(db, 1)
    assert status == "ok" and cost == charged == reserved == 11 * 15


def test_the_upstream_key_never_reaches_the_ledger(gw, upstream, db):
    """Defect 7: the upstream's key echoed in an HTTP error, and in an error event inside a
    stream, is in no ledger column (nor anywhere in the database)."""
    fake, _ = upstream
    _, key = gw.create_key(budget="1")
    fake.handler = fake.json_reply({"error": {"message": f"Incorrect API key provided: {UPSTREAM_KEY}"}}, status=401)
    response = httpx2.post(f"{gw.url}/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES},
                           headers={"authorization": f"Bearer {key}"}, timeout=10)
    assert response.status_code == 401 and UPSTREAM_KEY not in response.text
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
             "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    error = {"error": {"message": f"internal failure, key={UPSTREAM_KEY}", "type": "server_error"}}
    fake.handler = fake.sse_reply(b"data: " + orjson.dumps(chunk) + b"\n\ndata: " + orjson.dumps(error) + b"\n\n")
    with httpx2.stream("POST", f"{gw.url}/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json={"model": "gpt-4o", "messages": MESSAGES, "stream": True}, timeout=10) as streamed:
        assert UPSTREAM_KEY not in streamed.read().decode()
    rows = db.fetch("SELECT error FROM billing_usage ORDER BY created_ms") if db.wait_for_rows(2) else []
    assert len(rows) == 2 and all(row[0] and "***" in row[0] for row in rows)
    assert UPSTREAM_KEY not in db.dump()
