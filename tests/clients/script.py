"""A scripted agent turn, independent of the wire protocol.

A `Script` answers each model request of a client from a neutral `Turn` (what the request
declares and carries): a request whose user text lacks the script's ``trigger`` is a side
request (titles, topic checks, warm-ups) and gets ``side_text``; the scripted request gets the
tool ``call`` while the tool is declared and its result has not come back; once the result for
the call's id is in the conversation, the script checks it holds ``expect_result`` and answers
``final_text``. A freeform call (a custom tool's) made where the tool is declared as a function
with one string parameter (how a gateway hands a custom tool to an upstream that has functions
only) passes its text as that parameter, as a model would. Each fake upstream parses its protocol into a `Turn` and writes the answer back
in that protocol; the script keeps the ``steps`` it took and the ``problems`` it saw, so a test
fails when the client never declared the tool, never ran it, or sent back a wrong result.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Answer", "Script", "ToolCall", "Turn"]


@dataclass(frozen=True)
class ToolCall:
    """A call the fake model makes: ``arguments`` become the tool input as JSON; with
    ``freeform`` set it is a call of a custom (freeform) tool whose input is that text (the
    Responses API's ``custom_tool_call``, as Codex's ``apply_patch``)."""

    name: str
    arguments: dict[str, Any]
    id: str
    freeform: str | None = None

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, separators=(",", ":"))


@dataclass(frozen=True)
class Turn:
    """What one model request carries, protocol-neutral."""

    tools: tuple[str, ...]
    user_text: str
    tool_results: dict[str, str]
    stream: bool
    model: str
    schemas: dict[str, Any] = field(default_factory=dict)  # a function's JSON schema, by name


@dataclass(frozen=True)
class Answer:
    """The fake model's answer: ``text`` and, when set, a tool ``call`` after it."""

    text: str
    call: ToolCall | None = None


@dataclass
class Script:
    """See the module docstring. Thread-safe: the fakes run in the server's thread."""

    trigger: str
    final_text: str
    call: ToolCall | None = None
    expect_result: str | None = None
    side_text: str = "OK"
    lead_text: str = "Let me check."
    steps: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def answer(self, turn: Turn) -> Answer:
        with self._lock:
            return self._answer(turn)

    def _answer(self, turn: Turn) -> Answer:
        if self.trigger not in turn.user_text:
            self.steps.append("side")
            return Answer(self.side_text)
        if self.call is None:
            self.steps.append("final")
            return Answer(self.final_text)
        if self.call.id in turn.tool_results:
            result = turn.tool_results[self.call.id]
            self.results.append(result)
            if self.expect_result is not None and self.expect_result not in result:
                self.problems.append(
                    f"the result of {self.call.name} ({self.call.id}) lacks "
                    f"{self.expect_result!r}: {result[:500]!r}")
            self.steps.append("final")
            return Answer(self.final_text)
        if turn.tool_results:
            self.problems.append(
                f"tool results for unknown call ids {sorted(turn.tool_results)} "
                f"(expected {self.call.id})")
        if self.call.name not in turn.tools:
            self.steps.append("side")
            return Answer(self.side_text)
        self.steps.append("call")
        return Answer(self.lead_text, _as_declared(self.call, turn.schemas.get(self.call.name)))

    def check(self) -> None:
        """Fail unless the script called its tool (if any), got the result and answered."""
        expected = ["call", "final"] if self.call else ["final"]
        main = [step for step in self.steps if step != "side"]
        assert not self.problems, "\n".join(self.problems)
        assert main == expected, f"scripted steps {main} (all: {self.steps}), expected {expected}"


def _as_declared(call: ToolCall, schema: Any) -> ToolCall:
    """``call``, its freeform text passed as the one string parameter of ``schema`` when the
    tool is declared as such a function."""
    if call.freeform is None or not isinstance(schema, dict):
        return call
    properties = schema.get("properties") or {}
    strings = [name for name, spec in properties.items() if isinstance(spec, dict) and spec.get("type") == "string"]
    if len(properties) != 1 or len(strings) != 1:
        return call
    return replace(call, arguments={strings[0]: call.freeform}, freeform=None)
