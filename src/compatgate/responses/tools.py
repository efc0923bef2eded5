"""Responses tools <-> chat function tools, both ways.

Every tool type the Responses API defines is accepted. A chat upstream can call functions only:

- ``function`` tools are chat functions as they are;
- ``namespace`` tools (Codex's ``multi_agent_v1``...) are flattened: each of their functions
  becomes the chat function ``<namespace>__<name>`` (`flat_name`), and a call of it comes back
  as a ``function_call`` item with ``namespace`` and ``name`` apart, as the API returns it;
- ``custom`` (freeform) tools (Codex's ``apply_patch``) become functions with one string
  parameter, ``input`` (described with the tool's grammar, when it has one); a call comes back
  as a ``custom_tool_call`` item whose ``input`` is that string;
- hosted tools, which the upstream cannot run (``web_search``, ``file_search``,
  ``code_interpreter``, ``image_generation``, ``computer_use_preview``, ``mcp``,
  ``local_shell``, ``shell``, ``apply_patch``, ``tool_search``...), are left out and named in
  `ToolMap.dropped` (the gateway says so in a response header and its log); a ``tool_choice``
  that forces one of them is left out too.

Input items go the same way: a ``function_call`` with a ``namespace`` calls the flattened name,
a ``custom_tool_call`` calls its function with ``{"input": ...}``, and their outputs become tool
messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["SEPARATOR", "ToolMap", "call_arguments", "custom_input", "flat_name", "output_text_of", "tool_map"]

Body = dict[str, Any]

#: Between a namespace and a function name in the flattened chat name.
SEPARATOR = "__"
_INPUT = "input"  # the one parameter of a custom tool's function


def flat_name(namespace: str | None, name: str) -> str:
    """The chat function name of ``name`` in ``namespace`` (``name`` itself outside one)."""
    return f"{namespace}{SEPARATOR}{name}" if namespace else name


@dataclass(slots=True)
class ToolMap:
    """The chat tools of a Responses request and how their calls map back.

    ``functions`` maps each chat function name to its ``(namespace, name)``; ``custom`` holds
    the chat names of custom tools; ``dropped`` names the tools left out."""

    chat: list[Body] = field(default_factory=list)
    functions: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    custom: set[str] = field(default_factory=set)
    dropped: list[str] = field(default_factory=list)

    def is_custom(self, chat_name: str) -> bool:
        return chat_name in self.custom

    def origin(self, chat_name: str) -> tuple[str | None, str]:
        """The ``(namespace, name)`` of a chat function (a name the upstream made up: itself)."""
        return self.functions.get(chat_name, (None, chat_name))

    def tool_choice(self, choice: Any) -> Any:
        """The chat ``tool_choice`` for a Responses one (None: leave it out)."""
        if not self.chat:
            return None
        if isinstance(choice, str):
            return choice
        if not isinstance(choice, dict):
            return None
        kind = choice.get("type")
        if kind in ("function", "custom") and isinstance(choice.get("name"), str):
            name = flat_name(choice.get("namespace"), choice["name"])
            return {"type": "function", "function": {"name": name}} if name in self.functions else None
        if kind == "allowed_tools":
            names = [flat_name(tool.get("namespace"), tool["name"]) for tool in choice.get("tools") or ()
                     if isinstance(tool, dict) and tool.get("type") in ("function", "custom")
                     and isinstance(tool.get("name"), str)]
            tools = [{"type": "function", "function": {"name": name}} for name in names if name in self.functions]
            if not tools:
                return None
            mode = choice.get("mode") if choice.get("mode") in ("auto", "required") else "auto"
            return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": tools}}
        self.dropped.append(f"tool_choice {kind}")
        return None

    def output_item(self, chat_name: str, call_id: str, arguments: str, id_: str, status: str) -> Body:
        """The output item of a chat tool call: ``custom_tool_call`` or ``function_call``."""
        namespace, name = self.origin(chat_name)
        if chat_name in self.custom:  # the API's custom_tool_call has no status
            item: Body = {"type": "custom_tool_call", "id": id_, "call_id": call_id, "name": name,
                          "input": custom_input(arguments)}
        else:
            item = {"type": "function_call", "id": id_, "call_id": call_id, "name": name,
                    "arguments": arguments, "status": status}
        if namespace:
            item["namespace"] = namespace
        return item


def tool_map(tools: Any) -> ToolMap:
    """The `ToolMap` of a Responses ``tools`` array."""
    mapped = ToolMap()
    for tool in tools or ():
        if not isinstance(tool, dict):
            continue
        kind = tool.get("type")
        if kind in ("function", "custom"):
            _add(mapped, tool, None)
        elif kind == "namespace" and isinstance(tool.get("name"), str):
            for inner in tool.get("tools") or ():
                if isinstance(inner, dict) and inner.get("type") in ("function", "custom"):
                    _add(mapped, inner, tool["name"])
        else:
            label = tool.get("name") or tool.get("server_label")
            mapped.dropped.append(f"{kind}:{label}" if isinstance(label, str) and label else str(kind))
    return mapped


def _add(mapped: ToolMap, tool: Body, namespace: str | None) -> None:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        return
    chat_name = flat_name(namespace, name)
    if chat_name in mapped.functions:  # a flattened name that clashes: the first one keeps it
        mapped.dropped.append(f"{tool.get('type')}:{chat_name}")
        return
    mapped.functions[chat_name] = (namespace, name)
    if tool.get("type") == "custom":
        mapped.custom.add(chat_name)
        function = _custom_function(chat_name, tool)
    else:
        function = {"name": chat_name, **{key: tool[key] for key in ("description", "parameters", "strict")
                                          if tool.get(key) is not None}}
    mapped.chat.append({"type": "function", "function": function})


def _custom_function(name: str, tool: Body) -> Body:
    """A custom tool as a function taking its freeform input as one string."""
    format_: Body = tool["format"] if isinstance(tool.get("format"), dict) else {}
    described = "The tool's whole input, as raw text."
    if format_.get("type") == "grammar" and isinstance(format_.get("definition"), str):
        described = (f"The tool's whole input, as raw text that follows this {format_.get('syntax') or ''} "
                     f"grammar exactly:\n{format_['definition']}")
    function: Body = {"name": name, "parameters": {
        "type": "object", "properties": {_INPUT: {"type": "string", "description": described}},
        "required": [_INPUT], "additionalProperties": False}}
    if isinstance(tool.get("description"), str):
        function["description"] = tool["description"]
    return function


def custom_input(arguments: str) -> str:
    """A custom tool's input from its function's ``arguments`` (``{"input": "..."}``); arguments
    of another shape are kept whole, never lost."""
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get(_INPUT), str):
        return str(value[_INPUT])
    return value if isinstance(value, str) else arguments


def call_arguments(item: Body) -> tuple[str, str]:
    """The chat ``(name, arguments)`` of a ``function_call`` or ``custom_tool_call`` input item."""
    name: str = item["name"] if isinstance(item.get("name"), str) else ""
    namespace: str | None = item["namespace"] if isinstance(item.get("namespace"), str) else None
    chat_name = flat_name(namespace, name)
    if item.get("type") == "custom_tool_call":
        return chat_name, orjson.dumps({_INPUT: item.get("input") or ""}).decode()
    return chat_name, item.get("arguments") or ""


def output_text_of(output: Any) -> str:
    """A tool call's ``output`` as the text of a tool message (a string, or the texts of its
    content parts; anything else as JSON)."""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in output):
        return "".join(part["text"] for part in output)
    return orjson.dumps(output).decode()
