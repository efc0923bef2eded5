"""Where Anthropic's OpenAPI document is wrong, shown on the real recordings.

The response schemas mark as required fields that the real API leaves out of its events (the
recordings in ``fixtures/anthropic-sse``). The gateway follows the spec where it is right: what
it emits on ``/messages`` carries every one of those fields (null when unknown) and validates
against the strict spec (see the other inbound tests). This test pins the errata: the
recordings validate once exactly these ``required`` entries are lifted, and each erratum is
needed by at least one recording (so the list never goes stale). Two more errata, outside the
events: ``ErrorResponse`` has no ``request_too_large`` type although Anthropic answers 413 with
it, and ``InputMessage.role`` lacks ``"system"``, which the API accepts (Claude Code sends it).
"""

from __future__ import annotations

import copy
from typing import Any

from anthropic_support import RECORDINGS, recorded_events, recording
from anthropic_inbound_support import _SCHEMAS
from jsonschema import Draft202012Validator

from compatgate.testing import OpenAISchema

#: schema -> fields it requires that real events omit.
ERRATA: dict[str, tuple[str, ...]] = {
    "Message": ("container", "stop_details"),
    "Usage": ("cache_creation", "cache_creation_input_tokens", "cache_read_input_tokens", "inference_geo",
              "server_tool_use", "service_tier"),
    "MessageDelta": ("container", "stop_details"),
    "MessageDeltaUsage": ("cache_creation_input_tokens", "cache_read_input_tokens", "input_tokens", "server_tool_use"),
    "ResponseTextBlock": ("citations",),
    "ResponseToolUseBlock": ("caller",),
    "ResponseServerToolUseBlock": ("caller",),
}
#: Beta block types that the GA event schemas do not know (not an erratum: the beta spec has them).
BETA_BLOCKS = ("compaction", "fallback")


def validator(components: dict[str, Any], name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": components})


def lifted(schema: OpenAISchema, *skip: str) -> dict[str, Any]:
    components = copy.deepcopy(schema.components)
    for name, fields in ERRATA.items():
        if name not in skip:
            definition = components["schemas"][name]
            definition["required"] = [f for f in definition["required"] if f not in fields]
    return components


def recorded() -> list[dict[str, Any]]:
    events = []
    for name in RECORDINGS:
        for event in recorded_events(recording(name)):
            if event.get("type") not in _SCHEMAS:
                continue  # unknown event types, which clients must ignore
            block = event.get("content_block") or {}
            if block.get("type") in BETA_BLOCKS or event.get("delta", {}).get("type") == "compaction_delta":
                continue
            events.append(event)
    return events


def test_the_recordings_validate_once_the_errata_are_lifted(anthropic_schema: OpenAISchema):
    components = lifted(anthropic_schema)
    for event in recorded():
        errors = [e.message for e in validator(components, _SCHEMAS[event["type"]]).iter_errors(event)]
        assert not errors, (event, errors)


def test_every_erratum_is_needed_by_some_recording(anthropic_schema: OpenAISchema):
    events = recorded()
    for name, fields in ERRATA.items():
        components = lifted(anthropic_schema, name)  # this one schema strict again
        failing = [e for e in events if not validator(components, _SCHEMAS[e["type"]]).is_valid(e)]
        assert failing, f"no recording omits a field of {name}: {fields} may be required after all"


def test_the_spec_lacks_request_too_large_and_system_messages(anthropic_schema: OpenAISchema):
    spec = anthropic_schema.components["schemas"]
    assert "request_too_large" not in spec["ErrorResponse"]["properties"]["error"]["discriminator"]["mapping"]
    assert spec["InputMessage"]["properties"]["role"]["enum"] == ["user", "assistant"]
