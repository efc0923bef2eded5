"""POST /responses converted on chat with every tool type the Responses API defines, as Codex
CLI sends them (the captured requests of ``tests/clients/captures``): function tools as they
are, namespaces flattened and mapped back with their ``namespace``, custom (freeform) tools as
one-string functions whose calls come back as ``custom_tool_call`` items, hosted tools left out
and named in ``x-compatgate-dropped-tools`` and the log; never a 400. Answers and events are
validated against OpenAI's spec."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
from support import CLIENT_KEY, ROOT, Served, gateway_config

from compatgate.testing import OpenAISchema

CAPTURES = ROOT / "tests" / "clients" / "captures"


def codex_request(test: str, number: int) -> dict[str, Any]:
    path = next((CAPTURES / test).glob(f"{number:02d}-*.json"))
    body = orjson.loads(Path(path).read_bytes())["body"]
    return {**body, "model": "gpt-4o"}


@pytest.fixture
def rgw(make_gateway, upstream) -> Served:
    return make_gateway(gateway_config(upstream[1], response_store="off"))


def chat_answer(calls: list[tuple[str, str]]) -> dict[str, Any]:
    tool_calls = [{"id": f"call_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
                  for i, (name, arguments) in enumerate(calls)]
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "tool_calls",
                         "message": {"role": "assistant", "content": "On it.", "tool_calls": tool_calls}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 9, "total_tokens": 59}}


CALLS = [("multi_agent_v1__spawn_agent", '{"message":"look"}'),
         ("apply_patch", orjson.dumps({"input": "*** Begin Patch\n*** End Patch\n"}).decode()),
         ("exec_command", '{"cmd":"ls"}')]


def post(gw: Served, body: dict[str, Any]) -> httpx2.Response:
    return httpx2.post(f"{gw.url}/responses", json=body, timeout=10, headers={"authorization": f"Bearer {CLIENT_KEY}"})


def check_output(output: list[dict[str, Any]]) -> None:
    spawn, patch, command = output[1:]
    assert (spawn["type"], spawn["namespace"], spawn["name"]) == ("function_call", "multi_agent_v1", "spawn_agent")
    assert (patch["type"], patch["name"], patch["input"]) == ("custom_tool_call", "apply_patch",
                                                              "*** Begin Patch\n*** End Patch\n")
    assert (command["type"], command["name"], command.get("namespace")) == ("function_call", "exec_command", None)


def test_codex_tools_are_converted_and_mapped_back(rgw: Served, upstream, openai_schema: OpenAISchema,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer(CALLS))
    body = {**codex_request("test_codex_runs_a_command_and_returns_the_output-direct", 1), "stream": False}
    patching = codex_request("test_codex_applies_a_patch_with_its_freeform_tool-direct", 1)
    body["tools"] = [*body["tools"], *(t for t in patching["tools"] if t["type"] in ("custom", "tool_search"))]
    with caplog.at_level(logging.INFO, logger="compatgate"):
        response = post(rgw, body)
    assert response.status_code == 200, response.text
    assert response.headers["x-compatgate-dropped-tools"] == "web_search, tool_search"
    assert any("web_search" in r.getMessage() for r in caplog.records if r.name == "compatgate")
    answer = response.json()
    openai_schema.validate("Response", answer)
    check_output(answer["output"])
    sent = fake.received[0].json
    names = [tool["function"]["name"] for tool in sent["tools"]]
    assert "multi_agent_v1__spawn_agent" in names and "exec_command" in names and "web_search" not in names
    patch = next(t["function"] for t in sent["tools"] if t["function"]["name"] == "apply_patch")
    assert patch["parameters"]["required"] == ["input"] and "begin_patch" in patch["parameters"]["properties"][
        "input"]["description"]
    assert sent["messages"][0]["role"] == "system"  # Codex's developer messages
    assert "store" not in sent and "include" not in sent and "prompt_cache_key" not in sent


def test_codex_tools_stream(rgw: Served, upstream, openai_schema: OpenAISchema) -> None:
    fake, _ = upstream
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return b"data: " + orjson.dumps({**head, "choices": [{"index": 0, "delta": delta,
                                                               "finish_reason": finish}]}) + b"\n\n"

    pieces = [chunk({"role": "assistant", "content": "On it."})]
    for index, (name, arguments) in enumerate(CALLS):
        pieces.append(chunk({"tool_calls": [{"index": index, "id": f"call_{index}", "type": "function",
                                             "function": {"name": name, "arguments": ""}}]}))
        for start in range(0, len(arguments), 5):
            pieces.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[start:start + 5]}}]}))
    pieces += [chunk({}, "tool_calls"), b"data: [DONE]\n\n"]
    fake.handler = fake.sse_reply(b"".join(pieces))
    body = codex_request("test_codex_applies_a_patch_with_its_freeform_tool-direct", 2)
    runs = codex_request("test_codex_runs_a_command_and_returns_the_output-direct", 1)
    body["tools"] = [*body["tools"], *(t for t in runs["tools"] if t["type"] == "namespace")]
    with httpx2.stream("POST", f"{rgw.url}/responses", json=body, timeout=10,
                       headers={"authorization": f"Bearer {CLIENT_KEY}"}) as response:
        assert response.status_code == 200
        events = [orjson.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    names: dict[str, str] = {}
    for ref in openai_schema.components["schemas"]["ResponseStreamEvent"]["anyOf"]:
        name = ref["$ref"].rsplit("/", 1)[1]
        names[openai_schema.components["schemas"][name]["properties"]["type"]["enum"][0]] = name
    for event in events:
        openai_schema.validate(names[event["type"]], event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert "response.custom_tool_call_input.done" in kinds
    check_output(events[-1]["response"]["output"])
    # the history Codex sent (a custom_tool_call and its output) went upstream as a tool round trip
    sent = fake.received[0].json["messages"]
    call = next(m for m in sent if m.get("tool_calls"))
    assert call["content"] == "Let me check." and call["tool_calls"][0]["function"]["name"] == "apply_patch"
    assert orjson.loads(call["tool_calls"][0]["function"]["arguments"])["input"].startswith("*** Begin Patch")
    result = next(m for m in sent if m["role"] == "tool")
    assert result["tool_call_id"] == "call_CodexPatchFromTheFakeModel" and "Success" in result["content"]


def test_hosted_items_and_choices_are_left_out(rgw: Served, upstream) -> None:
    fake, _ = upstream
    fake.handler = fake.json_reply(chat_answer([("exec_command", "{}")]))
    body = {"model": "gpt-4o", "tools": [{"type": "function", "name": "exec_command", "parameters": {}},
                                          {"type": "mcp", "server_label": "docs", "server_url": "https://x"}],
            "tool_choice": {"type": "mcp", "server_label": "docs"},
            "input": [{"role": "user", "content": "hi"},
                      {"type": "web_search_call", "id": "ws_1", "status": "completed",
                       "action": {"type": "search", "query": "q"}},
                      {"type": "local_shell_call", "id": "ls_1", "call_id": "c9", "status": "completed",
                       "action": {"type": "exec", "command": ["ls"], "env": {}}}]}
    response = post(rgw, body)
    assert response.status_code == 200, response.text
    assert response.headers["x-compatgate-dropped-tools"] == "mcp:docs, tool_choice mcp"
    assert response.headers["x-compatgate-ignored"] == "input[1] (web_search_call), input[2] (local_shell_call)"
    sent = fake.received[0].json
    assert "tool_choice" not in sent and [m["role"] for m in sent["messages"]] == ["user"]
