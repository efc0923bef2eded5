"""docs/hooks.md documents every hook with its exact signature."""

from __future__ import annotations

import inspect
import re

from support import ROOT

from compatgate import hookspecs


def spec_signatures() -> dict[str, str]:
    signatures = {}
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if getattr(function, "compatgate_spec", None) is None:
            continue
        signature = inspect.signature(function)
        params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
        signatures[name] = f"def {name}({params}) -> {signature.return_annotation}"
    return signatures


def documented_signatures() -> dict[str, str]:
    text = (ROOT / "docs" / "hooks.md").read_text()
    blocks = re.findall(r"```python\n(def \w+\([^`]*?\) -> [^`]*?)\n```", text, flags=re.DOTALL)
    return {re.match(r"def (\w+)", block).group(1): " ".join(block.split()) for block in blocks}


def test_every_hook_is_documented_with_its_exact_signature():
    specs = spec_signatures()
    documented = documented_signatures()
    assert len(specs) >= 13
    assert sorted(documented) == sorted(specs), "docs/hooks.md and hookspecs.py list different hooks"
    for name, signature in specs.items():
        assert documented[name] == signature, f"docs/hooks.md shows {name} as\n{documented[name]}\nnot\n{signature}"


def test_every_hookspec_says_how_results_combine():
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if getattr(function, "compatgate_spec", None) is not None:
            doc = inspect.getdoc(function) or ""
            assert "async" in doc.lower() or "synchronous" in doc.lower(), name


def parenthetical(text: str, opening: str) -> str:
    """The text inside the parentheses that follow ``opening`` (nested ones included)."""
    start = text.index(opening) + len(opening)
    depth = 1
    for index in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index]
    raise AssertionError(f"unbalanced parentheses after {opening!r}")


def endpoint_names() -> set[str]:
    """Every ``ctx.endpoint`` value the core defines: its operation table's names (the OpenAI
    operations and ``/responses``) and the endpoints the gateway answers itself."""
    from compatgate.defaults.responses import StoredResponseEndpoint
    from compatgate.local import ModelsEndpoint
    from compatgate.operations import OPENAI_OPERATIONS

    return {op.name for op in OPENAI_OPERATIONS} | {"responses", ModelsEndpoint.name, StoredResponseEndpoint.name}


def test_hooks_md_lists_every_endpoint_name():
    text = (ROOT / "docs" / "hooks.md").read_text()
    bullet = re.search(r"^- `RequestContext`:.*?(?=^- |\Z)", text, flags=re.DOTALL | re.MULTILINE)
    assert bullet, "docs/hooks.md has no RequestContext bullet"
    documented = set(re.findall(r'`"([a-z_.]+)"`', parenthetical(bullet.group(), "`endpoint` (")))
    assert documented >= endpoint_names(), (
        f"docs/hooks.md lists ctx.endpoint as {sorted(documented)}, the code defines {sorted(endpoint_names())}"
    )


def test_endpoints_md_lists_every_operation():
    """docs/endpoints.md's operation table names every operation a gateway serves with every
    plugin of this repository installed, with its path and how it is metered."""
    from compatgate import Gateway
    from compatgate.defaults.demo import demo_config

    gateway = Gateway(demo_config())
    text = (ROOT / "docs" / "endpoints.md").read_text()
    table = re.search(r"^## The operation table\n(.*?)(?=^## |\Z)", text, flags=re.DOTALL | re.MULTILINE)
    assert table, "docs/endpoints.md has no '## The operation table' section"
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z_.]+)` \| `([^`]+)` \|", table.group(1), re.M)}
    served = {op.name: op.path for op in gateway.operations.values()}
    assert rows == served, f"docs/endpoints.md lists {sorted(rows.items())}, the gateway serves {sorted(served.items())}"


def configuration_section(title: str) -> str:
    text = (ROOT / "docs" / "configuration.md").read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.DOTALL | re.MULTILINE)
    assert match, f"docs/configuration.md has no section {title!r}"
    return match.group(1)


def test_configuration_md_documents_every_key():
    import dataclasses

    from compatgate.config import MODEL_KEYS, PROVIDER_KEYS, GatewaySettings

    sections = {
        "`[gateway]`": [f.name for f in dataclasses.fields(GatewaySettings)],
        "`[providers.<name>]`": list(PROVIDER_KEYS),
        "`[[models]]`": list(MODEL_KEYS),
    }
    for title, keys in sections.items():
        rows = set(re.findall(r"^\| `(\w+)` \|", configuration_section(title), flags=re.MULTILINE))
        assert rows == set(keys), f"docs/configuration.md {title}: documented {sorted(rows)}, the code has {sorted(keys)}"


def test_configuration_md_documents_every_cli_flag():
    import argparse

    from compatgate.cli import build_parser

    parser = build_parser(plugin_commands=False)
    text = configuration_section("CLI")
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in subcommands.choices.items():
        for action in command._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in text, f"docs/configuration.md (CLI) does not document `compatgate {name} {flag}`"
