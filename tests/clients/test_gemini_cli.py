"""Gemini CLI (``gemini -p``) runs a tool turn against a Gemini endpoint set by
``GOOGLE_GEMINI_BASE_URL``: ``streamGenerateContent?alt=sse`` asks for ``run_shell_command``,
Gemini CLI runs it (``--yolo``) and sends the ``functionResponse`` back. Through the gateway
the model is an OpenAI-compatible chat upstream (see `targets.GatewayTarget`)."""

from __future__ import annotations

from .runner import Sandbox
from .script import Script, ToolCall
from .targets import Target

SECRET = "mango-91d2"


def test_gemini_runs_a_shell_command_and_returns_the_output(sandbox: Sandbox,
                                                            target: Target) -> None:
    (sandbox.work / "note.txt").write_text(f"{SECRET}\n", encoding="utf-8")
    script = Script(
        trigger="TASK-GM-SHELL", final_text="The note holds the mango code.",
        call=ToolCall("run_shell_command", {"command": "cat note.txt"}, "gemini-shell-call"),
        expect_result=SECRET)
    with target.gemini(script) as endpoint:
        result = sandbox.gemini("TASK-GM-SHELL: what does note.txt say?", base_url=endpoint.url,
                                key=endpoint.key, model=endpoint.model).ok()
    endpoint.upstream.check()
    assert result.stdout.strip().endswith("The note holds the mango code.")
    turns = endpoint.upstream.turns()
    assert all(turn.stream for turn in turns)
    assert {"run_shell_command", "read_file", "write_file"} <= set(turns[0].tools), turns[0].tools
    if endpoint.gateway is None:
        calls = endpoint.upstream.received
        assert all(r.path.endswith(f"/models/{endpoint.model}:streamGenerateContent") for r in calls)
        assert all(r.query == "alt=sse" for r in calls)
        assert "systemInstruction" in calls[0].json
    else:  # the system instruction as the chat's system message
        assert endpoint.upstream.received[0].json["messages"][0]["role"] == "system"
