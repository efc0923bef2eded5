"""Gemini CLI (``gemini -p``) runs a tool turn against a Gemini endpoint set by
``GOOGLE_GEMINI_BASE_URL``: ``streamGenerateContent?alt=sse`` asks for ``run_shell_command``,
Gemini CLI runs it (``--yolo``) and sends the ``functionResponse`` back."""

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
    calls = endpoint.upstream.received
    assert all(r.path.endswith(f"/models/{endpoint.model}:streamGenerateContent") for r in calls)
    assert all(r.query == "alt=sse" for r in calls)
    body = calls[0].json
    assert "systemInstruction" in body
    names = {d["name"] for tool in body["tools"] for d in tool["functionDeclarations"]}
    assert {"run_shell_command", "read_file", "write_file"} <= names, names
