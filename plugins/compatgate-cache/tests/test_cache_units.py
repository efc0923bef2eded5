"""The pieces on their own: the entry's bytes, the memory bound, settings checks, an
unreachable Redis (answers go on without the cache)."""

from __future__ import annotations

import asyncio

import pytest
from cache_support import KEYS, Served, cache_status, config
from compatgate_cache import CacheKey, Entry, EntryError, MemoryBackend, parse_settings

from compatgate import ConfigError, Gateway, Usage
from compatgate.testing import serve_gateway


def test_an_entry_survives_its_bytes_and_damage_is_refused():
    entry = Entry("events", (b"event: a\ndata: {}\n\n", b"", b"\x00\xff"), "text/event-stream", Usage(3, 4, 7), "responses")
    again = Entry.decode(entry.encode())
    assert again == entry
    for damaged in (b"", b"CGC1", entry.encode()[:-1], b"XXXX" + entry.encode()[4:], entry.encode() + b"x"):
        with pytest.raises(EntryError):
            Entry.decode(damaged)


def test_the_memory_backend_stays_under_its_bytes_least_recently_used_first():
    clock = [0.0]
    backend = MemoryBackend(3_000, clock=lambda: clock[0])
    keys = [CacheKey("k:a", "m", str(i)) for i in range(5)]
    entry = Entry("json", (b"x" * 700,))
    for key in keys[:3]:
        assert backend.set_now(key, entry, 60)
    assert backend.get_now(keys[0]) is entry  # now the most recently used
    backend.set_now(keys[3], entry, 60)
    assert backend.bytes <= 3_000 and len(backend) == 3
    assert backend.get_now(keys[1]) is None and backend.get_now(keys[0]) is entry  # keys[1] went
    assert not backend.set_now(keys[4], Entry("json", (b"x" * 3_000,)), 60)  # alone over the bound
    clock[0] = 61.0
    assert backend.get_now(keys[0]) is None and backend.bytes == 2 * entry.cost  # expired, dropped
    assert asyncio.run(backend.purge(model="m")) == 2 and backend.bytes == 0


@pytest.mark.parametrize(
    "table, complaint",
    [
        ({"backend": "disk"}, "backend"),
        ({"backend": "redis"}, "redis_url is required"),
        ({"scope": "tenant"}, "scope"),
        ({"when": "sometimes"}, "when"),
        ({"ttl_seconds": 0}, "ttl_seconds"),
        ({"max_bytes": -1}, "max_bytes"),
        ({"admin_key": "short"}, "admin_key"),
        ({"ignore_params": ["model"]}, "ignore_params"),
        ({"key_prefix": "a*b"}, "key_prefix"),
        ({"models": {"gpt-4o": {"ttl": 3}}}, 'models."gpt-4o".ttl'),
        ({"models": {"gpt-4o": {"enabled": "no"}}}, "enabled"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_settings_are_checked(table, complaint):
    with pytest.raises(ConfigError, match=complaint.replace(".", r"\.").replace('"', '"')):
        parse_settings(table, "test.toml")
    with pytest.raises(ConfigError):
        Gateway(config("http://127.0.0.1:1", table))


def test_an_unreachable_redis_never_fails_a_request(upstream, caplog):
    table = config(upstream[1], {"backend": "redis", "redis_url": "redis://127.0.0.1:1/0", "redis_timeout": 0.2})
    with serve_gateway(table, served=Served) as gw:
        body = {"messages": [{"role": "user", "content": "Say hello."}], "temperature": 0}
        answers = [gw.chat(body, key=KEYS[0]) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert {cache_status(a) for a in answers} == {"bypass"}
        assert len(upstream[0].received) == 3
        assert "the redis backend is unavailable" in caplog.text
