"""The CLI end to end: ``compatgate keys ...``, ``balance add`` and ``usage``, through
compatgate's own ``main`` (its argument parsing and plugin commands), and once as the installed
``compatgate`` command in a process of its own."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from billing_support import SERVER_SECRET, Database, billing_config, cli, write_config

from compatgate.cli import main


class CLI:
    """Runs ``compatgate ARGS --config PATH`` in this process; returns (status, stdout, stderr)."""

    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config = config
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            main([*args, "--config", str(self.config)])
            status = 0
        except SystemExit as exit:
            status = int(exit.code or 0)
        out, err = self.capsys.readouterr()
        return status, out, err

    def json(self, *args: str) -> Any:
        status, out, err = self(*args, "--json")
        assert status == 0, err
        return json.loads(out)


@pytest.fixture
def run(
    db: Database,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> CLI:
    monkeypatch.setenv("COMPATGATE_BILLING_TEST_SECRET", SERVER_SECRET)
    return CLI(write_config(billing_config("http://127.0.0.1:9", db), tmp_path), capsys)


def test_keys_balance_and_usage(run: CLI, db: Database):
    created = run.json(
        "keys",
        "create",
        "--name",
        "ci",
        "--owner",
        "team-a",
        "--budget",
        "2.5",
        "--model",
        "gpt-4o*",
        "--model",
        "o3",
        "--expires",
        "30d",
        "--metadata",
        '{"ratelimit": {"rpm": 100}}',
    )
    key_id, secret = created["id"], created["secret"]
    assert secret.startswith(f"sk-cg-{key_id}-") and created["allowed_models"] == ["gpt-4o*", "o3"]
    assert (
        created["metadata"] == {"ratelimit": {"rpm": 100}} and created["balance_micro"] == 2_500_000
    )
    status, out, err = run("keys", "create", "--owner", "team-b")
    assert status == 0 and "key:" in out and "not shown again" in err
    other = out.split("id:", 1)[1].split()[0]

    status, out, _ = run("keys", "list")
    assert (
        status == 0 and key_id in out and other in out and "2.500000" in out and "unlimited" in out
    )
    assert [k["id"] for k in run.json("keys", "list", "--owner", "team-a")] == [key_id]

    shown = run.json("keys", "show", key_id)
    assert shown["credits"][0]["kind"] == "budget" and "secret" not in shown
    status, out, _ = run("keys", "show", key_id)
    assert "budget" in out and secret not in out

    assert run.json("keys", "disable", key_id)["status"] == "disabled"
    assert run.json("keys", "enable", key_id)["status"] == "active"
    rotated = run.json("keys", "rotate", key_id)
    assert rotated["secret"] != secret and rotated["id"] == key_id

    topped = run.json("balance", "add", key_id, "0.5", "--note", "bonus")
    assert (
        topped["credit"]["amount_micro"] == 500_000 and topped["key"]["balance_micro"] == 3_000_000
    )
    status, _, err = run("balance", "add", key_id, "-5", "--adjustment")
    assert status == 1 and "below zero" in err
    assert (
        run.json("balance", "add", key_id, "-1", "--adjustment")["key"]["balance_micro"]
        == 2_000_000
    )

    async def record(store: Any) -> None:
        from billing_support import ledger_entry

        await store.settle(
            [
                ledger_entry("a", key_id, 40),
                ledger_entry("b", key_id, 2, model="o3"),
                ledger_entry("c", other, 7),
            ]
        )

    db.run(record)
    status, out, _ = run("usage", "--by", "key,model")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert status == 0 and [(r["key_id"], r["model"], r["cost_micro"]) for r in rows] == sorted(
        [(key_id, "gpt-4o", "40"), (key_id, "o3", "2"), (other, "gpt-4o", "7")]
    )
    totals = json.loads(run("usage", "--by", "key", "--key", key_id, "--format", "json")[1])
    assert [(t["key_id"], t["requests"], t["charged_micro"]) for t in totals] == [(key_id, 2, 42)]
    assert (
        json.loads(
            run("usage", "--since", "2000-01-01", "--until", "2000-01-02", "--format", "json")[1]
        )
        == []
    )

    assert run.json("keys", "delete", key_id)["status"] == "deleted"
    assert [k["id"] for k in run.json("keys", "list")] == [other]
    assert [k["status"] for k in run.json("keys", "list", "--all")] == ["deleted", "active"]


def test_errors(run: CLI, tmp_path: Path):
    for args in (
        ("keys", "show", "0" * 16),
        ("keys", "disable", "nope"),
        ("balance", "add", "0" * 16, "1"),
    ):
        status, _, err = run(*args)
        assert status == 1 and "no key" in err, args
    for args in (
        ("keys", "create", "--budget", "lots"),
        ("keys", "create", "--metadata", "{"),
        ("keys", "create", "--expires", "whenever"),
        ("usage", "--by", "week"),
    ):
        status, _, err = run(*args)
        assert status == 1 and err.startswith("compatgate: "), args
    plain = tmp_path / "plain.toml"
    plain.write_text('[gateway]\napi_keys = ["k"]\n')
    status, _, err = CLI(plain, run.capsys)("keys", "list")
    assert status == 2 and "no [plugins.billing] table" in err
    status, _, err = CLI(tmp_path / "absent.toml", run.capsys)("keys", "list")
    assert status == 2 and "configuration file not found" in err


def test_the_installed_command(sqlite_db: Database, tmp_path: Path):
    config = write_config(billing_config("http://127.0.0.1:9", sqlite_db), tmp_path)
    created = cli("keys", "create", "--config", str(config), "--budget", "1", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    listed = cli("keys", "list", "--config", str(config))
    assert (
        listed.returncode == 0 and key["id"] in listed.stdout and key["secret"] not in listed.stdout
    )
