"""What a provider call gives back, and what the gateway learnt from it.

A provider answers with a `Reply` (a complete JSON answer), a `ChunkStream` (OpenAI-shaped
chunks of a streamed answer: ``chat.completion.chunk`` or ``text_completion``) or a `RawReply`
(bytes relayed as they come: audio, text formats, a protocol's own event stream). When the
request is over, the gateway reports what happened as a `Result`: the usage, the `Answer`
(finish reasons, model and id, as the answer said them) and the metered `Units`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .metering import Units
    from .usage import Usage

__all__ = ["Answer", "Chunk", "ChunkStream", "RawReply", "Reply", "Result", "answer_of"]

Body = dict[str, Any]


@dataclass(slots=True)
class Reply:
    """A complete (non-streamed) answer. ``raw``, when given, is ``data`` exactly as the
    upstream encoded it, relayed as is when no hook changes the body. ``usage``, when given, is
    the answer's usage (for protocols whose usage is not OpenAI's ``usage`` object)."""

    data: Body
    raw: bytes | None = None
    usage: Usage | None = None


@dataclass(slots=True)
class RawReply:
    """An answer relayed as bytes, as they come (audio, text formats, an event stream).

    ``usage``, when known, and ``generated`` (characters of generated text relayed so far, for
    an estimate when the client leaves before the usage is known) are updated by ``chunks``
    while it runs. Closing ``chunks`` early (``aclose``) must release the upstream.
    ``keepalive``: the bytes that keep this stream alive in its own format, which may be written
    between any two pieces of ``chunks`` (None: an SSE comment, between two events of an event
    stream only)."""

    chunks: AsyncIterator[bytes]
    media_type: str
    usage: Usage | None = None
    generated: int = 0
    keepalive: bytes | None = None


class Chunk:
    """One streamed chunk: the decoded object, and the upstream's bytes for it when relayable.
    ``more`` says that further chunks arrived in the same network read, so the gateway may
    write them to the client together (fewer writes, no added delay)."""

    __slots__ = ("data", "more", "raw")

    def __init__(self, data: Body, raw: bytes | None = None, more: bool = False) -> None:
        self.data = data
        self.raw = raw
        self.more = more


class ChunkStream(Protocol):
    """An async iterator of chunks that can be closed early (closing cancels the upstream)."""

    def __aiter__(self) -> AsyncIterator[Chunk]: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """What an answer said about itself: one finish reason per finished choice (in the order
    they came), the model and the id. Read where the gateway already looks: no extra parsing."""

    finish_reasons: tuple[str, ...] = ()
    model: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """How a request ended, as the endpoint records it: the usage (None when unknown), the
    answer, and the metered units beside tokens (images, audio seconds, characters)."""

    usage: Usage | None = None
    answer: Answer = field(default_factory=Answer)
    units: Units | None = None


def answer_of(data: Body) -> Answer:
    """The `Answer` of a complete JSON answer (chat, completions, Responses, others)."""
    choices = data.get("choices")
    reasons = tuple(
        str(choice["finish_reason"]) for choice in choices
        if isinstance(choice, dict) and choice.get("finish_reason")
    ) if isinstance(choices, list) else ()
    model, id_ = data.get("model"), data.get("id")
    return Answer(reasons, model if isinstance(model, str) else None, id_ if isinstance(id_, str) else None)
