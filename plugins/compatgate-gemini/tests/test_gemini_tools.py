"""Tools: JSON Schema made acceptable to Gemini, function names sanitised and mapped back,
``tool_choice`` -> ``functionCallingConfig``."""

from __future__ import annotations

import re
from typing import Any

import pytest
from gemini_support import USER, Served, chunks_of, gemini_response, refused, sent, sse

from compatgate.testing import FakeUpstream


def tool(name: str, parameters: Any = None, description: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    if parameters is not None:
        function["parameters"] = parameters
    if description is not None:
        function["description"] = description
    return {"type": "function", "function": function}


def declared(gw: Served, upstream: FakeUpstream, parameters: Any) -> dict[str, Any]:
    (group,) = sent(gw, upstream, tools=[tool("f", parameters)])["tools"]
    (declaration,) = group["functionDeclarations"]
    return declaration


OBJ = "OBJECT"
SCHEMAS = [
    ("types-upper-cased-extras-dropped",
     {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "title": "Args", "additionalProperties": False,
      "properties": {"q": {"type": "string", "description": "query", "minLength": 1, "maxLength": 9, "pattern": "^a"},
                     "n": {"type": "integer", "minimum": 1, "maximum": 5, "default": 2, "examples": [3]},
                     "x": {"type": "number", "format": "double", "multipleOf": 0.5},
                     "ok": {"type": "boolean", "deprecated": True}},
      "required": ["q", "ghost"], "patternProperties": {"^z": {}}},
     {"type": OBJ, "properties": {"q": {"type": "STRING", "description": "query", "minLength": 1, "maxLength": 9, "pattern": "^a"},
                                  "n": {"type": "INTEGER", "minimum": 1, "maximum": 5, "default": 2, "example": 3},
                                  "x": {"type": "NUMBER", "format": "double"},
                                  "ok": {"type": "BOOLEAN"}},
      "required": ["q"]}),
    ("refs-inlined",
     {"type": "object", "properties": {"home": {"$ref": "#/$defs/Address"}, "work": {"$ref": "#/definitions/Address", "description": "office"}},
      "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
      "definitions": {"Address": {"type": "object", "properties": {"street": {"type": "string"}}}}},
     {"type": OBJ, "properties": {"home": {"type": OBJ, "properties": {"city": {"type": "STRING"}}, "required": ["city"]},
                                  "work": {"type": OBJ, "description": "office", "properties": {"street": {"type": "STRING"}}}}}),
    ("nullable-forms",
     {"type": "object", "properties": {
         "a": {"type": ["string", "null"]},
         "b": {"anyOf": [{"type": "integer"}, {"type": "null"}], "description": "maybe"},
         "c": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
         "d": {"type": ["string", "integer"]},
         "e": {"enum": ["x", "y", None]}}},
     {"type": OBJ, "properties": {
         "a": {"type": "STRING", "nullable": True},
         "b": {"type": "INTEGER", "description": "maybe", "nullable": True},
         "c": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
         "d": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
         "e": {"type": "STRING", "enum": ["x", "y"], "nullable": True}}}),
    ("const-enum-format-bounds",
     {"type": "object", "properties": {
         "kind": {"const": "fixed"},
         "level": {"type": "integer", "enum": [1, 2, 3], "description": "How loud"},
         "mail": {"type": "string", "format": "email"},
         "when": {"type": "string", "format": "date-time"},
         "count": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
         "ratio": {"type": "number", "exclusiveMinimum": 0}}},
     {"type": OBJ, "properties": {
         "kind": {"type": "STRING", "enum": ["fixed"]},
         "level": {"type": "INTEGER", "description": "How loud (Allowed values: 1, 2, 3)"},
         "mail": {"type": "STRING", "description": "Format: email"},
         "when": {"type": "STRING", "format": "date-time"},
         "count": {"type": "INTEGER", "minimum": 1, "maximum": 9},
         "ratio": {"type": "NUMBER"}}}),
    ("all-of-merged-arrays",
     {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "array", "items": {"type": "string"}, "minItems": 1, "uniqueItems": True}}, "required": ["b"]}]},
     {"type": OBJ, "properties": {"a": {"type": "STRING"}, "b": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 1}},
      "required": ["a", "b"]}),
    ("free-form-nested-object",
     {"type": "object", "properties": {"meta": {"type": "object", "additionalProperties": {"type": "string"}},
                                       "tags": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}}},
     {"type": OBJ, "properties": {"meta": {"type": OBJ}, "tags": {"type": "ARRAY", "items": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}}}}),
]


@pytest.mark.parametrize(("parameters", "expected"), [c[1:] for c in SCHEMAS], ids=[c[0] for c in SCHEMAS])
def test_parameters_schema_sanitised(gw: Served, upstream: FakeUpstream, parameters: dict, expected: dict):
    assert declared(gw, upstream, parameters) == {"name": "f", "parameters": expected}


def test_parameterless_functions_declare_no_parameters(gw: Served, upstream: FakeUpstream):
    """Gemini refuses an OBJECT without properties: such parameters are left out."""
    assert declared(gw, upstream, {"type": "object", "properties": {}}) == {"name": "f"}
    assert declared(gw, upstream, None) == {"name": "f"}


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}},
          "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}}, "recursive"),
        ({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}, "does not point into"),
        ({"type": "object", "properties": {"a": {"type": "decimal"}}}, "unknown type"),
        ({"type": "object", "properties": {"a": 5}}, "must be a JSON object"),
    ],
    ids=["recursive", "dangling-ref", "unknown-type", "not-a-schema"],
)
def test_inexpressible_schemas_are_400(gw: Served, upstream: FakeUpstream, parameters: dict, message: str):
    error = refused(gw, upstream, tools=[tool("f", parameters)])
    assert message in error["message"] and error["param"] == "tools[0].function.parameters"


def test_json_schema_mode_sends_the_schema_itself(make_gateway, upstream: FakeUpstream):
    """tool_schema = "json_schema": parametersJsonSchema, recursion and all (newer models)."""
    schema = {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}},
              "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}}}
    gw = make_gateway(tool_schema="json_schema")
    declaration = declared(gw, upstream, {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema})
    assert declaration == {"name": "f", "parametersJsonSchema": schema}


NAMES = ["get weather!", "9lives", "ünïcode", "x" * 70, "ok.name:with-dashes_1"]


def test_names_sanitised_for_gemini_and_mapped_back(gw: Served, upstream: FakeUpstream):
    tools = [tool(name, {"type": "object", "properties": {"a": {"type": "string"}}}, "d") for name in NAMES]
    history = [*USER, {"role": "assistant", "tool_calls": [
        {"id": "h1", "type": "function", "function": {"name": "get weather!", "arguments": "{}"}}]},
               {"role": "tool", "tool_call_id": "h1", "content": "sunny"}]
    body = sent(gw, upstream, messages=history, tools=tools,
                tool_choice={"type": "function", "function": {"name": "get weather!"}})
    gemini_names = [d["name"] for d in body["tools"][0]["functionDeclarations"]]
    assert gemini_names[-1] == "ok.name:with-dashes_1"  # valid names are kept
    for name in gemini_names:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:\-]{0,63}", name), name
    assert len(set(gemini_names)) == len(NAMES)
    assert gemini_names[0].startswith("get_weather__") and gemini_names[1].startswith("_9lives_")
    assert body["contents"][1]["parts"][0]["functionCall"]["name"] == gemini_names[0]
    assert body["contents"][2]["parts"][0]["functionResponse"]["name"] == gemini_names[0]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [gemini_names[0]]}}

    calls = [{"functionCall": {"name": gemini, "args": {"a": str(i)}}} for i, gemini in enumerate(gemini_names)]
    calls.append({"functionCall": {"name": "not_declared", "args": {}}})
    upstream.handler = upstream.json_reply(gemini_response(calls))
    message = gw.client().chat.completions.create(model="gemini-2.5-flash", messages=USER, tools=tools).choices[0].message
    assert [c.function.name for c in message.tool_calls] == [*NAMES, "not_declared"]
    assert len({c.id for c in message.tool_calls}) == len(calls)

    upstream.handler = upstream.sse_reply(sse(gemini_response(calls[:2], finish=None), gemini_response(calls[2:])), split=b"\r\n\r\n")
    _, payloads = gw.stream({"model": "gemini-2.5-flash", "messages": USER, "tools": tools})
    streamed = [call for chunk in chunks_of(payloads) for call in chunk["choices"][0]["delta"].get("tool_calls", [])]
    assert [c["function"]["name"] for c in streamed] == [*NAMES, "not_declared"]
    assert [c["index"] for c in streamed] == list(range(len(calls)))


@pytest.mark.parametrize(
    ("choice", "config", "kept"),
    [
        ("auto", {"mode": "AUTO"}, ["a", "b"]),
        ("none", {"mode": "NONE"}, ["a", "b"]),
        ("required", {"mode": "ANY"}, ["a", "b"]),
        ({"type": "function", "function": {"name": "b"}}, {"mode": "ANY", "allowedFunctionNames": ["b"]}, ["a", "b"]),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "a"}}]}},
         {"mode": "ANY", "allowedFunctionNames": ["a"]}, ["a", "b"]),
        ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "b"}}]}},
         {"mode": "AUTO"}, ["b"]),
    ],
    ids=["auto", "none", "required", "function", "allowed-required", "allowed-auto"],
)
def test_tool_choice(gw: Served, upstream: FakeUpstream, choice: Any, config: dict, kept: list[str]):
    body = sent(gw, upstream, tools=[tool("a"), tool("b")], tool_choice=choice)
    assert body["toolConfig"] == {"functionCallingConfig": config}
    assert [d["name"] for d in body["tools"][0]["functionDeclarations"]] == kept


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [tool("a")], "tool_choice": {"type": "function", "function": {"name": "zzz"}}}, "tool_choice.function.name"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": [tool("a")], "tool_choice": "sometimes"}, "tool_choice"),
        ({"tools": [tool("a")], "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": "maybe"}}},
         "tool_choice.allowed_tools"),
        ({"tools": [{"type": "custom", "custom": {"name": "grammar"}}]}, "tools[0]"),
        ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools[0].function.name"),
        ({"tools": [tool("a"), tool("a")]}, "tools[1]"),
        ({"tools": {"type": "function"}}, "tools"),
    ],
    ids=["unknown-function", "choice-without-tools", "unknown-choice", "bad-allowed-tools", "custom-tool",
         "nameless", "duplicate", "not-a-list"],
)
def test_bad_tools_are_400(gw: Served, upstream: FakeUpstream, body: dict, param: str):
    assert refused(gw, upstream, **body)["param"] == param
