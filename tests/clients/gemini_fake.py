"""A scripted Gemini upstream (``models/{model}:generateContent``,
``:streamGenerateContent?alt=sse``, ``:countTokens``, ``GET models``).

Streams are framed like ``shared/fixtures/gemini/*.httprr``: ``data: <GenerateContentResponse>``
events separated by CRLF CRLF, the text in pieces, a ``functionCall`` part (with its ``id``
when the request used ids, as the Gemini API echoes them), and ``finishReason: "STOP"`` with
``usageMetadata`` on the last chunk.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from starlette.types import Send

from compatgate.testing import Received

from .script import Answer, Turn
from .upstream import ScriptedUpstream

__all__ = ["GeminiUpstream", "gemini_turn"]

_ids = itertools.count(1)
# An opaque thought signature (valid base64, as the SDKs decode it), as Gemini 2.5+/3 attach to
# a function call part.
_SIGNATURE = base64.b64encode(b"\n$\x01r\xc8\xdafake thought signature for scripted tests only").decode()


def _result_text(response: Any) -> str:
    if isinstance(response, dict) and set(response) <= {"output", "error"}:
        return str(response.get("output", response.get("error", "")))
    return json.dumps(response)


def gemini_turn(body: dict[str, Any], model: str, stream: bool,
                call_ids: dict[str, str] | None = None) -> Turn:
    """The neutral view of a generateContent request. The Gemini API gives function calls no
    ids (the recordings have none; a client may make up its own), so a function response
    counts as the result of the call id ``call_ids`` gives for its function name."""
    user: list[str] = []
    results: dict[str, str] = {}
    for content in body.get("contents", []):
        if content.get("role", "user") != "user":
            continue
        for part in content.get("parts", []):
            if "text" in part:
                user.append(part["text"])
            if "functionResponse" in part:
                response = part["functionResponse"]
                name = response.get("name", "")
                results[(call_ids or {}).get(name, name)] = _result_text(response.get("response"))
    declarations = [declaration for tool in body.get("tools") or []
                    for declaration in tool.get("functionDeclarations") or []]
    tools = tuple(declaration["name"] for declaration in declarations)
    schemas = {d["name"]: d.get("parametersJsonSchema") or d.get("parameters") for d in declarations}
    return Turn(tools, "\n".join(user), results, stream, model, schemas)


class GeminiUpstream(ScriptedUpstream):
    protocol = "gemini"
    model_path = (":generateContent", ":streamGenerateContent")
    routes = (
        ("POST", ":streamGenerateContent", "generate"),
        ("POST", ":generateContent", "generate"),
        ("POST", ":countTokens", "count_tokens"),
        ("GET", "/models", "models"),
    )

    def turn(self, request: Received) -> Turn:
        name = request.path.rsplit("/", 1)[-1]
        model, _, method = name.partition(":")
        return gemini_turn(request.json, model, method == "streamGenerateContent")

    async def error(self, send: Send, status: int, message: str) -> None:
        kind = {401: "UNAUTHENTICATED", 404: "NOT_FOUND"}.get(status, "INTERNAL")
        await self.json(send, {"error": {"code": status, "message": message, "status": kind}},
                        status)

    async def count_tokens(self, request: Received, send: Send) -> None:
        await self.json(send, {"totalTokens": max(1, len(request.body) // 4)})

    async def models(self, request: Received, send: Send) -> None:
        await self.json(send, {"models": [{"name": "models/gemini-2.5-flash",
                                           "supportedGenerationMethods": ["generateContent"]}]})

    async def generate(self, request: Received, send: Send) -> None:
        name = request.path.rsplit("/", 1)[-1]
        model, _, method = name.partition(":")
        stream = method == "streamGenerateContent"
        if stream and "alt=sse" not in request.query:
            self.problems.append(f"streamGenerateContent without alt=sse: {request.query!r}")
        body = request.json
        call = self.script.call
        turn = gemini_turn(body, model, stream, {call.name: call.id} if call else None)
        answer = self.script.answer(turn)
        chunks = self.chunks(answer, model, max(1, len(request.body) // 4))
        if stream:
            events = [b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks]
            await self.sse(send, events)
        else:
            await self.json(send, self.merge(chunks))

    @staticmethod
    def chunks(answer: Answer, model: str, prompt_tokens: int) -> list[dict[str, Any]]:
        response_id = f"fakeResponse{next(_ids):08d}"
        text = answer.text
        pieces: list[dict[str, Any]] = [{"text": text[i:i + 8]} for i in range(0, len(text), 8)]
        if answer.call:
            pieces.append({"functionCall": {"name": answer.call.name,
                                            "args": answer.call.arguments},
                           "thoughtSignature": _SIGNATURE})
        chunks = []
        for index, part in enumerate(pieces):
            candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"},
                                         "index": 0}
            chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": model,
                                     "responseId": response_id}
            if index == len(pieces) - 1:
                candidate["finishReason"] = "STOP"
                chunk["usageMetadata"] = {"promptTokenCount": prompt_tokens,
                                          "candidatesTokenCount": 12,
                                          "totalTokenCount": prompt_tokens + 12}
            chunks.append(chunk)
        return chunks

    @staticmethod
    def merge(chunks: list[dict[str, Any]]) -> dict[str, Any]:
        """The non-streamed answer: every chunk's parts in one candidate."""
        parts = [p for c in chunks for p in c["candidates"][0]["content"]["parts"]]
        last = chunks[-1]
        candidate = {**last["candidates"][0], "content": {"parts": parts, "role": "model"}}
        return {**last, "candidates": [candidate]}
