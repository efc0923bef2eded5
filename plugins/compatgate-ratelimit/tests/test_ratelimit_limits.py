"""The limits as a client sees them, on the memory backend and on Redis (every test runs on both):
exact request counts under concurrency, the headers, tokens reserved and corrected, concurrency
counted at the upstream, leases released and renewed, window boundaries."""

from __future__ import annotations

import asyncio
import re
import threading
import time

import httpx2
import openai
import pytest
from ratelimit_support import (
    CHAT,
    KEYS,
    MESSAGES,
    FakeClock,
    assert_rate_limited,
    chat_answer,
    clocked,
    error_of,
    fire,
    slow_reply,
    sse_stream,
    statuses,
)

DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+(\.\d+)?s|\d+ms)$")


def test_requests_per_minute_are_exact_under_concurrency(backend, upstream, make_gateway):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    served = make_gateway({**backend, "rpm": 10})
    responses = asyncio.run(fire([served.url], 25, concurrency=25))
    assert statuses(responses) == {200: 10, 429: 15}
    assert len(fake.received) == 10
    ok = [r for r in responses if r.status_code == 200]
    # Every admission saw a distinct count: the check-and-reserve is atomic.
    assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == list(range(10))
    for response in responses:
        assert response.headers["x-ratelimit-limit-requests"] == "10"
        assert DURATION.match(response.headers["x-ratelimit-reset-requests"])
        assert "x-ratelimit-limit-tokens" not in response.headers  # no token limit configured
    for response in (r for r in responses if r.status_code == 429):
        error = assert_rate_limited(response)
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert 55 <= int(response.headers["retry-after"]) <= 60
        assert (
            "key static:0 on requests per min (RPM): Limit 10, Used 10, Requested 1"
            in error["message"]
        )


def test_headers_on_success_stream_and_refusal_through_the_sdk(backend, upstream, make_gateway):
    fake, _ = upstream
    served = make_gateway({**backend, "rpm": 3, "tpm": 10_000})
    client = openai.OpenAI(api_key=KEYS[0], base_url=served.url, max_retries=0, timeout=10)

    fake.handler = fake.json_reply(chat_answer(10, 5))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=100
    )
    assert raw.parse().choices[0].message.content == "Hello."
    first = raw.headers
    assert (first["x-ratelimit-limit-requests"], first["x-ratelimit-remaining-requests"]) == (
        "3",
        "2",
    )
    assert first["x-ratelimit-reset-requests"] == "1m0s"
    assert (first["x-ratelimit-limit-tokens"], first["x-ratelimit-remaining-tokens"]) == (
        "10000",
        str(10_000 - 107),
    )
    assert first["x-ratelimit-reset-tokens"] == "1m0s"
    served.records(1)

    fake.handler = fake.sse_reply(sse_stream(["Hel", "lo."], 10, 20))
    with httpx2.stream(
        "POST",
        f"{served.url}/chat/completions",
        timeout=10,
        headers={"authorization": f"Bearer {KEYS[0]}"},
        json={**CHAT, "stream": True, "max_tokens": 100},
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-ratelimit-remaining-requests"] == "1"
        # The first request's estimate (107) was replaced by its usage (15).
        assert response.headers["x-ratelimit-remaining-tokens"] == str(10_000 - 15 - 107)
        assert list(response.iter_lines())[-2] == "data: [DONE]"
    served.records(2)

    fake.handler = fake.json_reply(chat_answer(10, 5))
    third = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES, max_tokens=100
    )
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert third.headers["x-ratelimit-remaining-tokens"] == str(
        10_000 - 15 - 30 - 107
    )  # the stream's usage: 30

    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    error = caught.value
    assert error.status_code == 429 and error.code == "rate_limit_exceeded"
    assert error.body["type"] == "rate_limit_error"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(error.response.headers["retry-after"]) >= 55
    assert len(fake.received) == 3


def test_token_limits_reserve_then_correct_with_real_usage(backend, upstream, make_gateway):
    fake, _ = upstream
    served = make_gateway({**backend, "tpm": 1000})
    body = {**CHAT, "max_tokens": 400}  # "Say hello." estimates at 7 prompt tokens: 407 reserved
    fake.handler = fake.json_reply(chat_answer(10, 40))  # 50 really used

    remaining = []
    for count in range(1, 4):
        response = served.post(body)
        assert response.status_code == 200
        remaining.append(int(response.headers["x-ratelimit-remaining-tokens"]))
        served.records(count)
    assert remaining == [1000 - 407, 1000 - 50 - 407, 1000 - 100 - 407]

    # Two slow requests hold 2 x 407: a third is refused before it goes upstream...
    fake.handler = slow_reply(fake, 1.0, chat_answer(10, 40))
    threads = [threading.Thread(target=served.post, args=(body,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while fake.in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    refused = served.post(body)
    error = assert_rate_limited(refused)
    assert "tokens per min (TPM): Limit 1000, Used 964, Requested 407" in error["message"]
    assert refused.headers["x-ratelimit-remaining-tokens"] == "36"
    for thread in threads:
        thread.join(10)
    served.records(6)
    # ...and once they finished, their usage (50 each) replaced their reservations.
    fake.handler = fake.json_reply(chat_answer(10, 40))
    after = served.post(body)
    assert after.status_code == 200 and after.headers["x-ratelimit-remaining-tokens"] == str(
        1000 - 250 - 407
    )
    served.records(7)

    # An upstream error used nothing: its reservation is released entirely.
    fake.handler = fake.json_reply(
        {"error": {"message": "boom", "type": "server_error"}}, status=500
    )
    assert served.post(body).status_code == 500
    served.records(8)
    fake.handler = fake.json_reply(chat_answer(10, 40))
    assert served.post(body).headers["x-ratelimit-remaining-tokens"] == str(1000 - 300 - 407)

    # A request whose estimate alone exceeds the limit can never pass: no Retry-After, no retry.
    too_large = served.post({**CHAT, "max_tokens": 5000})
    assert too_large.status_code == 429 and error_of(too_large)["code"] == "rate_limit_exceeded"
    assert "Request too large" in error_of(too_large)["message"]
    assert too_large.headers["x-should-retry"] == "false" and "retry-after" not in too_large.headers
    assert len(fake.received) == 3 + 2 + 1 + 1 + 1


def test_an_answer_without_usage_keeps_its_reservation(backend, upstream, make_gateway):
    fake, _ = upstream
    answer = chat_answer()
    del answer["usage"]
    fake.handler = fake.json_reply(answer)
    served = make_gateway({**backend, "tpm": 1000, "default_max_tokens": 300})
    assert served.post().headers["x-ratelimit-remaining-tokens"] == str(1000 - 307)
    served.records(1)
    assert served.post().headers["x-ratelimit-remaining-tokens"] == str(1000 - 2 * 307)


def test_concurrency_is_never_exceeded_at_the_upstream(backend, upstream, make_gateway):
    fake, _ = upstream
    peak = [0]
    fake.handler = slow_reply(fake, 0.4, peak=peak)
    served = make_gateway({**backend, "concurrency": 5, "rpm": 1000})
    refusals: list[httpx2.Response] = []

    async def worker(client: httpx2.AsyncClient) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            response = await client.post(
                f"{served.url}/chat/completions",
                json=CHAT,
                headers={"authorization": f"Bearer {KEYS[0]}"},
            )
            if response.status_code == 200:
                return
            refusals.append(response)
            await asyncio.sleep(0.05)
        raise AssertionError("a worker never got through")

    async def main() -> None:
        async with httpx2.AsyncClient(
            timeout=15, limits=httpx2.Limits(max_connections=12)
        ) as client:
            await asyncio.wait_for(asyncio.gather(*(worker(client) for _ in range(12))), 40)

    asyncio.run(main())
    assert peak[0] == 5, (
        f"at most 5 requests at the upstream at once, and the limit is reached: {peak[0]}"
    )
    assert len(fake.received) == 12 and refusals
    for response in refusals:
        error = assert_rate_limited(response)
        assert (
            "Concurrency limit reached for key static:0: Limit 5, In flight 5" in error["message"]
        )
        assert response.headers["retry-after"] == "1"
    # Refused requests reserved nothing: only the 12 admitted ones count against rpm.
    served.records(12 + len(refusals))
    fake.handler = fake.json_reply(chat_answer())
    assert served.post().headers["x-ratelimit-remaining-requests"] == str(1000 - 13)


def test_leases_are_released_on_completion_error_and_disconnect(backend, upstream, make_gateway):
    fake, _ = upstream
    served = make_gateway({**backend, "concurrency": 1})
    fake.handler = fake.json_reply(chat_answer())
    assert served.post().status_code == 200
    served.records(1)
    fake.handler = fake.json_reply(
        {"error": {"message": "overloaded", "type": "server_error"}}, status=503
    )
    assert served.post().status_code == 503
    served.records(2)
    fake.handler = fake.sse_reply(sse_stream(["a", "b", "c"]), delay=0.001)
    assert served.post({**CHAT, "stream": True}).status_code == 200
    served.records(3)
    # A client that leaves mid-stream while the upstream stalls.
    first_event = sse_stream(["first"]).split(b"\n\n")[0] + b"\n\n"
    fake.handler = fake.sse_reply(first_event, then="stall", stall=10)
    with httpx2.stream(
        "POST",
        f"{served.url}/chat/completions",
        timeout=10,
        headers={"authorization": f"Bearer {KEYS[0]}"},
        json={**CHAT, "stream": True},
    ) as response:
        assert next(line for line in response.iter_lines() if line.startswith("data: "))
    assert fake.hung_up.wait(5)
    assert served.records(4)[-1].outcome == "aborted"
    fake.handler = fake.json_reply(chat_answer())
    assert served.post().status_code == 200
    assert served.limiter._leases == {}


def test_leases_of_long_requests_are_renewed(backend, upstream, make_gateway):
    fake, _ = upstream
    fake.handler = slow_reply(fake, 1.6)
    served = make_gateway({**backend, "concurrency": 1, "lease_seconds": 0.6})
    long = threading.Thread(target=served.post)
    long.start()
    time.sleep(1.1)  # past the first lease's expiry: only the renewals keep it
    assert fake.in_flight == 1
    refused = served.post()
    assert refused.status_code == 429 and "Concurrency limit" in error_of(refused)["message"]
    long.join(10)
    served.records(2)
    fake.handler = fake.json_reply(chat_answer())
    assert served.post().status_code == 200


def test_window_boundaries_are_exact(backend, upstream, make_gateway):
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer())
    clock = FakeClock()
    start = clock.now
    served = make_gateway({**backend, "rpm": 3}, plugins=(clocked(clock),))

    def at(offset: float) -> httpx2.Response:
        clock.now = start + offset
        return served.post()

    for offset in (0, 10, 20):
        assert at(offset).status_code == 200
    third = at(20)
    assert third.status_code == 429
    assert (third.headers["retry-after"], third.headers["retry-after-ms"]) == ("40", "40000")
    assert "try again in 40s" in error_of(third)["message"]
    assert third.headers["x-ratelimit-reset-requests"] == "1m0s"
    early = at(59.999)
    assert early.status_code == 429 and early.headers["retry-after-ms"] == "1"
    assert early.headers["x-ratelimit-reset-requests"] == "20.001s"
    on_time = at(60.0)
    assert on_time.status_code == 200 and on_time.headers["x-ratelimit-remaining-requests"] == "0"
    assert at(60.0).headers["retry-after-ms"] == "10000"
    assert at(69.999).status_code == 429
    assert at(70.0).status_code == 200
    assert at(80.0).status_code == 200
    assert at(80.0).status_code == 429
    assert at(200.0).headers["x-ratelimit-remaining-requests"] == "2"  # an idle window empties
