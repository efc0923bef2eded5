"""The ``[plugins.billing]`` table is checked when the gateway is built, and prices are exact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from billing_support import SECRET_ENV, SERVER_SECRET, Database, billing_config, cli, write_config
from compatgate_billing import Price, PriceTable
from compatgate_billing.pricing import format_micro, to_micro

from compatgate import ConfigError, Gateway, Units, Usage


def gateway_with(sqlite_db: Database, **billing: Any) -> Gateway:
    return Gateway(billing_config("http://127.0.0.1:9", sqlite_db, **billing))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"secret": None}, "plugins.billing.secret is required"),
        ({"secret": "short"}, "plugins.billing.secret is required"),
        ({"admin_key": "short"}, "admin_key must be a string of at least 16"),
        ({"database": "mysql://x"}, 'database must be "sqlite:///PATH" or "postgresql://'),
        ({"database": "sqlite:///:memory:"}, "needs a file path"),
        ({"schema": "billing"}, "schema applies to a PostgreSQL database only"),
        (
            {"database": "postgresql://u@h/d", "schema": "bad-name"},
            "schema must be a PostgreSQL identifier",
        ),
        ({"unpriced": "maybe"}, 'unpriced must be "free" or "refuse"'),
        ({"reservation_ttl_seconds": 0}, "reservation_ttl_seconds must be at least 0.5"),
        ({"reservation_ttl_seconds": "60"}, "reservation_ttl_seconds must be of type float"),
        ({"max_tokens": 0}, "max_tokens must be at least 1"),
        ({"queue_size": True}, "queue_size must be of type int"),
        ({"colour": "red"}, "colour: unknown key"),
        ({"prices": {"gpt-4o": {"input": -1}}}, 'prices."gpt-4o".input must not be negative'),
        ({"prices": {"gpt-4o": {"input": "cheap"}}}, 'prices."gpt-4o".input (per million tokens)'),
        ({"prices": {"gpt-4o": {"input": 0.0000001}}}, "more than six decimal places"),
        ({"prices": {"gpt-4o": {"outptu": 1}}}, 'prices."gpt-4o".outptu: unknown key'),
        (
            {"prices": {"gpt-4o": {"max_tokens": 1.5}}},
            'prices."gpt-4o".max_tokens must be a positive integer',
        ),
        ({"prices": {"gpt-4o": 3}}, 'prices."gpt-4o" must be a table'),
    ],
)
def test_mistakes_are_named(sqlite_db: Database, settings: dict[str, Any], message: str):
    config = billing_config("http://127.0.0.1:9", sqlite_db)
    for name, value in settings.items():
        if value is None:
            config["plugins"]["billing"].pop(name)
        else:
            config["plugins"]["billing"][name] = value
    with pytest.raises(ConfigError) as caught:
        Gateway(config)
    assert message in str(caught.value)
    assert SERVER_SECRET not in str(caught.value)


def test_defaults_and_relative_paths(
    tmp_path: Path, sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
):
    gateway = gateway_with(sqlite_db)
    settings = gateway.pm.get_plugin("billing").settings
    assert (settings.unpriced, settings.reservation_ttl, settings.max_tokens, settings.dialect) == (
        "free",
        60.0,
        4096,
        "sqlite",
    )
    assert SERVER_SECRET not in repr(settings)
    config = billing_config("http://127.0.0.1:9", Database("sqlite:///data/billing.db"))
    path = write_config(config, tmp_path)
    check = cli("check", "--config", str(path))
    assert check.returncode == 0, check.stderr
    monkeypatch.setenv(SECRET_ENV, SERVER_SECRET)
    loaded = Gateway(str(path)).pm.get_plugin("billing").settings
    assert loaded.sqlite_path == tmp_path / "data" / "billing.db"  # next to the configuration


def test_money_is_exact():
    assert to_micro(2.5) == 2_500_000 and to_micro("0.000001") == 1 and to_micro(3) == 3_000_000
    assert to_micro("1e-6") == 1 and to_micro(-0.25) == -250_000
    for bad in ("1e-7", "abc", float("inf"), True, None):
        with pytest.raises(ValueError):
            to_micro(bad)
    assert format_micro(12_500_000) == "12.500000" and format_micro(-1) == "-0.000001"


def test_cost_and_worst_case():
    price = Price(input=2_500_000, output=10_000_000, cached_input=1_250_000, cache_write=3_125_000)
    usage = Usage(
        prompt_tokens=1000, completion_tokens=100, cached_tokens=400, cache_write_tokens=100
    )
    # 500 fresh * 2.5 + 400 cached * 1.25 + 100 written * 3.125 + 100 out * 10, per token in micro-units
    assert price.cost(usage) == 3063  # 3062.5 rounded up
    assert price.cost(Usage(prompt_tokens=5, completion_tokens=-3, cached_tokens=9)) == 7  # clamped
    assert price.cost(Usage(prompt_tokens=1)) == 3  # 2.5 rounds up
    assert (
        Price(input=1_000_000).cost(Usage(prompt_tokens=5, cached_tokens=5)) == 5
    )  # no cached price: input
    # The worst case prices every prompt token at the dearest input rate (here the cache write).
    assert price.worst_case(Units(1000, 100), 7) == 3125 + 1000
    assert price.worst_case(Units(1000, None), 100) == 3125 + 1000  # no cap: the default output
    # Unit prices: per image, per second of audio (rounded up), per million characters.
    units = Price(per_image=40_000, per_audio_second=100, per_million_characters=15_000_000)
    assert units.cost(None, Units(0, 0, images=3, audio_seconds=2.5, characters=1000)) == 120_000 + 250 + 15_000
    assert units.worst_case(Units(0, 0, images=2), 0) == 80_000


def test_price_lookup():
    table = PriceTable(
        {"gpt-4o*": Price(input=1), "gpt-4o-mini": Price(input=2), "o?": Price(input=3)}
    )
    assert table.lookup("gpt-4o-mini").input == 2 and table.lookup("gpt-4o-2024").input == 1
    assert table.lookup("o3").input == 3 and table.lookup("claude") is None and len(table) == 3
