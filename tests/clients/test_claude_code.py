"""Claude Code (``claude -p``) runs a tool turn against an Anthropic Messages endpoint: the
model asks for a tool, Claude Code runs it in its working directory and sends the
``tool_result`` back, the model's final text is what ``claude -p`` prints. Through the gateway
the model is an OpenAI-compatible chat upstream (see `targets.GatewayTarget`)."""

from __future__ import annotations

from .runner import Sandbox
from .script import Script, ToolCall
from .targets import Target

SECRET = "banana-7f3a"


def test_claude_runs_bash_and_returns_the_result(sandbox: Sandbox, target: Target) -> None:
    (sandbox.work / "note.txt").write_text(f"{SECRET}\n", encoding="utf-8")
    script = Script(
        trigger="TASK-CC-BASH", final_text="The note says the fruit code.",
        call=ToolCall("Bash", {"command": "cat note.txt", "description": "Show note.txt"},
                      "toolu_01BashCallFromTheFakeModel"),
        expect_result=SECRET)
    with target.anthropic(script) as endpoint:
        result = sandbox.claude("TASK-CC-BASH: what does note.txt say?", base_url=endpoint.url,
                                key=endpoint.key, model=endpoint.model).ok()
    endpoint.upstream.check()
    assert result.stdout.strip() == "The note says the fruit code."
    turns = endpoint.upstream.turns()
    assert {"Bash", "Read", "Edit", "Write"} <= set(turns[0].tools), turns[0].tools
    assert all(turn.stream for turn in turns)


def test_claude_reads_a_file_with_its_read_tool(sandbox: Sandbox, target: Target) -> None:
    note = sandbox.work / "data" / "values.txt"
    note.parent.mkdir()
    note.write_text(f"alpha\n{SECRET}\nomega\n", encoding="utf-8")
    script = Script(
        trigger="TASK-CC-READ", final_text="Found it on line 2.",
        call=ToolCall("Read", {"file_path": str(note)}, "toolu_01ReadCallFromTheFakeModel"),
        expect_result=SECRET)
    with target.anthropic(script) as endpoint:
        result = sandbox.claude("TASK-CC-READ: find the code in data/values.txt",
                                base_url=endpoint.url, key=endpoint.key,
                                model=endpoint.model).ok()
    endpoint.upstream.check()
    assert result.stdout.strip() == "Found it on line 2."
    assert "omega" in script.results[0]


def test_claude_reports_a_refused_key(sandbox: Sandbox, target: Target) -> None:
    # Claude Code retries a 401 about ten times with backoff; CLAUDE_CODE_MAX_RETRIES=0 stops
    # at the first answer, whose status and Anthropic-format error message it prints.
    script = Script(trigger="TASK-CC-KEY", final_text="unreachable")
    with target.anthropic(script) as endpoint:
        result = sandbox.claude("TASK-CC-KEY: hello", base_url=endpoint.url, key="sk-wrong",
                                model=endpoint.model, CLAUDE_CODE_MAX_RETRIES="0")
    assert result.code == 1, result
    assert script.steps == []
    assert "Failed to authenticate. API Error: 401" in result.stdout, result
    # Straight at the fake, the fake refuses the key; a gateway refuses it before any upstream call.
    assert len(endpoint.upstream.received) == (0 if endpoint.gateway else 1)
