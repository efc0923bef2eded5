"""Codex CLI (``codex exec``) runs tool turns against a Responses endpoint configured as a
custom provider: a function tool (``exec_command``) whose ``function_call_output`` comes back,
and its freeform ``apply_patch`` tool (a ``custom_tool_call``) that edits the workspace.
Through the gateway the model is an Anthropic upstream (see `targets.GatewayTarget`)."""

from __future__ import annotations

from .runner import Sandbox
from .script import Script, ToolCall
from .targets import Target

SECRET = "kiwi-58c1"


def test_codex_runs_a_command_and_returns_the_output(sandbox: Sandbox, target: Target) -> None:
    (sandbox.work / "note.txt").write_text(f"{SECRET}\n", encoding="utf-8")
    script = Script(
        trigger="TASK-CX-EXEC", final_text="The note holds the kiwi code.",
        call=ToolCall("exec_command", {"cmd": "cat note.txt"}, "call_CodexExecFromTheFakeModel"),
        expect_result=SECRET)
    with target.responses(script) as endpoint:
        result = sandbox.codex("TASK-CX-EXEC: what does note.txt say?", base_url=endpoint.url,
                               key=endpoint.key, model=endpoint.model).ok()
    endpoint.upstream.check()
    assert result.stdout.strip().endswith("The note holds the kiwi code.")
    turns = endpoint.upstream.turns()
    assert all(turn.stream for turn in turns)
    if endpoint.gateway is None:  # what Codex sends
        bodies = [r.json for r in endpoint.upstream.calls("/responses")]
        assert all(body["store"] is False for body in bodies)
        types = {tool["type"] for tool in bodies[0]["tools"]}
        assert {"function", "namespace", "web_search"} <= types, types
    else:  # what the upstream got: the namespace's functions flattened, no web_search
        tools = set(turns[0].tools)
        assert {"exec_command", "multi_agent_v1__spawn_agent"} <= tools, tools
        assert not any("web_search" in tool for tool in tools), tools


def test_codex_applies_a_patch_with_its_freeform_tool(sandbox: Sandbox, target: Target) -> None:
    patch = ("*** Begin Patch\n*** Add File: hello.txt\n+hello from the fake model\n"
             "*** End Patch\n")
    script = Script(
        trigger="TASK-CX-PATCH", final_text="Created hello.txt.",
        call=ToolCall("apply_patch", {}, "call_CodexPatchFromTheFakeModel", freeform=patch),
        expect_result="hello.txt")
    with target.responses(script) as endpoint:
        # A model Codex knows (gpt-5.5; the gateway has a model of that name too) gets the
        # freeform apply_patch tool.
        result = sandbox.codex("TASK-CX-PATCH: create hello.txt", base_url=endpoint.url,
                               key=endpoint.key, model="gpt-5.5").ok()
    endpoint.upstream.check()
    assert (sandbox.work / "hello.txt").read_text(encoding="utf-8") == "hello from the fake model\n"
    assert result.stdout.strip().endswith("Created hello.txt.")
    first = endpoint.upstream.calls(endpoint.upstream.model_path)[0].json
    if endpoint.gateway is None:
        tools = {tool.get("name"): tool for tool in first["tools"]}
        assert tools["apply_patch"]["type"] == "custom"
        assert tools["apply_patch"]["format"]["syntax"] == "lark"
    else:  # a function taking the patch as its one string parameter, the grammar described
        tools = {tool["name"]: tool for tool in first["tools"]}
        schema = tools["apply_patch"]["input_schema"]
        assert list(schema["properties"]) == ["input"] and schema["required"] == ["input"]
        assert "begin_patch" in schema["properties"]["input"]["description"]
