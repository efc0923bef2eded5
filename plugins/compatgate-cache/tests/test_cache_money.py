"""With the real plugins: billing charges a hit its fraction and marks the ledger row cached,
the rate limiter counts a hit as a request but not as tokens, Prometheus counts hits, bytes
and saved tokens (the cache on both backends)."""

from __future__ import annotations

import time

import httpx2
from cache_support import COMPLETION, cache_status

BASE = {"messages": [{"role": "user", "content": "Say hello."}], "temperature": 0, "max_tokens": 100}
SECRET = "billing-secret-0123456789abcdef"
BILLING_ADMIN = "billing-admin-0123456789"


def test_billing_charges_a_hit_its_fraction(make_gateway, tmp_path):
    import sqlite3

    database = tmp_path / "billing.db"
    billing = {"database": f"sqlite:///{database}", "secret": SECRET, "admin_key": BILLING_ADMIN,
               "cache_hit_fraction": 0.1, "prices": {"gpt-4o": {"input": 2.5, "output": 10}}}  # fmt: skip
    gw = make_gateway({}, billing=billing)
    created = httpx2.post(f"{gw.url}/admin/keys", json={"budget": 1},
                          headers={"authorization": f"Bearer {BILLING_ADMIN}"})  # fmt: skip
    key_id, key = created.json()["id"], created.json()["secret"]
    assert cache_status(gw.chat(BASE, key=key)) == "miss"
    assert cache_status(gw.chat(BASE, key=key)) == "hit"
    assert cache_status(gw.chat(BASE, key=gw.key)) == "miss"  # a static key: its own namespace
    deadline = time.monotonic() + 10
    while True:
        with sqlite3.connect(database) as db:
            rows = db.execute("SELECT cached, cost_micro, charged_micro, prompt_tokens, completion_tokens, status "
                              "FROM billing_usage ORDER BY created_ms").fetchall()  # fmt: skip
        if len(rows) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    full = 12 * 2.5 + 9 * 10  # COMPLETION's usage at the price, micro-units per token
    assert COMPLETION["usage"]["prompt_tokens"] == 12 and COMPLETION["usage"]["completion_tokens"] == 9
    assert rows == [(0, full, full, 12, 9, "ok"), (1, 12, 12, 12, 9, "ok")]  # 10 % of 120
    records = gw.records(3)
    assert [r.cache for r in records] == ["miss", "hit", "miss"] and records[1].key_id == key_id


def test_the_rate_limiter_counts_a_hit_as_a_request_not_as_tokens(make_gateway):
    gw = make_gateway({}, ratelimit={"rpm": 10, "tpm": 10_000})

    def remaining() -> tuple[str, str]:
        response = gw.chat(BASE)
        return response.headers["x-ratelimit-remaining-requests"], response.headers["x-ratelimit-remaining-tokens"]

    first = remaining()
    gw.records(1)
    second = remaining()
    gw.records(2)
    time.sleep(0.1)  # the rate limiter settles after the usage log saw the record
    third = remaining()
    estimate = 10_000 - int(first[1])
    assert first[0] == "9" and second == ("8", str(10_000 - 21 - estimate))
    assert third == ("7", str(10_000 - 21 - estimate))  # the hit (second) used no tokens


def test_prometheus_counts_hits_bytes_and_saved_tokens(make_gateway):
    from prometheus_client.parser import text_string_to_metric_families

    gw = make_gateway({}, prometheus={"path": "/metrics"})
    first, second = gw.chat(BASE), gw.chat(BASE)
    gw.chat({**BASE, "temperature": 1})
    gw.records(3)
    text = httpx2.get(f"{gw.url}/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip
    labels = (("endpoint", "chat.completions"), ("model", "gpt-4o"), ("provider", "up"))
    for result, count in (("hit", 1), ("miss", 1), ("bypass", 1)):
        key = ("compatgate_cache_requests_total", tuple(sorted((*labels, ("result", result)))))
        assert samples[key] == count
    assert samples[("compatgate_cache_served_bytes_total", labels)] == len(second.content) == len(first.content)
    saved = {kind: samples[("compatgate_cache_saved_tokens_total", tuple(sorted((*labels, ("kind", kind)))))]
             for kind in ("prompt", "completion")}  # fmt: skip
    assert saved == {"prompt": 12, "completion": 9}
