"""`OpenAISchema`: validates what a gateway emits against the official OpenAI OpenAPI document
(needs the ``testing`` extra: jsonschema, pyyaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["OpenAISchema"]


class OpenAISchema:
    """Validates instances against ``components/schemas`` of an OpenAPI 3.1 document.

    OpenAPI's ``nullable: true`` is rewritten into ``anyOf [X, {type: null}]`` first, since a
    strict JSON Schema 2020-12 validator ignores it.
    """

    def __init__(self, path: str | Path) -> None:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        with open(path, encoding="utf-8") as file:
            document = yaml.load(file, Loader=loader)
        self.components = _nullable(document["components"])
        self._validators: dict[str, Any] = {}

    def errors(self, name: str, instance: Any) -> list[str]:
        """Every way ``instance`` fails the schema ``name`` (empty when valid)."""
        validator = self._validators.get(name)
        if validator is None:
            from jsonschema import Draft202012Validator

            schema = {"$ref": f"#/components/schemas/{name}", "components": self.components}
            validator = self._validators[name] = Draft202012Validator(schema)
        return [
            f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
            for error in validator.iter_errors(instance)
        ]

    def validate(self, name: str, instance: Any) -> None:
        """Raise AssertionError naming every violation of schema ``name``."""
        errors = self.errors(name, instance)
        if errors:
            raise AssertionError(f"not a valid {name}:\n  " + "\n  ".join(errors[:20]))


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _nullable(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted
