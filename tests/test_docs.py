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
    blocks = re.findall(r"```python\n(def \w+\([^`]*?\) -> [^`]*?)\n```", text, flags=re.S)
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
