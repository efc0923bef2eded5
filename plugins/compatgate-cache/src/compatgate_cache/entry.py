"""What the cache keeps for one answer, and its bytes in a shared backend.

An `Entry` is immutable and holds bytes only, so one entry can serve any number of requests at
once: ``"json"`` is a complete answer (its body as the upstream sent it); ``"chunks"`` a chat or
completions stream, one JSON object per chunk as the upstream sent it, usage chunk included;
``"events"`` a native event stream (``/responses``), its bytes as relayed, with its media type
and usage. The wire form (`Entry.encode`) is a small header then length-prefixed parts.
"""

from __future__ import annotations

import struct
import time
from typing import Any, Literal

import orjson

from compatgate import Usage

__all__ = ["Entry", "EntryError", "Kind"]

Kind = Literal["json", "chunks", "events"]
_MAGIC = b"CGC1"
_LENGTH = struct.Struct(">I")
_OVERHEAD = 200  # bytes an entry costs beyond its parts (object, key, LRU link), for the bound


class EntryError(ValueError):
    """Bytes that are not an entry this version wrote."""


class Entry:
    """``size`` is the bytes of the answer (what a hit serves from the cache), ``cost`` what
    the entry counts against a memory bound. Never changed once made."""

    __slots__ = ("cost", "kind", "media_type", "parts", "protocol", "size", "stored_at", "usage")

    def __init__(
        self,
        kind: Kind,
        parts: tuple[bytes, ...],
        media_type: str = "application/json",
        usage: Usage | None = None,  # "events" only: the stream's usage (the others carry theirs)
        protocol: str = "",  # the endpoint that produced it ("responses" for events)
        stored_at: float | None = None,
    ) -> None:
        self.kind = kind
        self.parts = parts
        self.media_type = media_type
        self.usage = usage
        self.protocol = protocol
        self.stored_at = time.time() if stored_at is None else stored_at
        self.size = sum(len(part) for part in parts) if len(parts) != 1 else len(parts[0])
        self.cost = self.size + _OVERHEAD + 40 * len(parts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<Entry {self.kind} {len(self.parts)} parts, {self.size} bytes>"

    def encode(self) -> bytes:
        header: dict[str, Any] = {"k": self.kind, "m": self.media_type, "p": self.protocol,
                                  "t": self.stored_at}  # fmt: skip
        if self.usage is not None:
            header["u"] = _usage_fields(self.usage)
        head = orjson.dumps(header)
        pieces = [_MAGIC, _LENGTH.pack(len(head)), head, _LENGTH.pack(len(self.parts))]
        for part in self.parts:
            pieces.append(_LENGTH.pack(len(part)))
            pieces.append(part)
        return b"".join(pieces)

    @classmethod
    def decode(cls, data: bytes) -> Entry:
        try:
            if data[:4] != _MAGIC:
                raise EntryError("not a compatgate-cache entry")
            view = memoryview(data)
            (length,) = _LENGTH.unpack_from(view, 4)
            header = orjson.loads(view[8 : 8 + length])
            offset = 8 + length
            (count,) = _LENGTH.unpack_from(view, offset)
            offset += 4
            parts = []
            for _ in range(count):
                (size,) = _LENGTH.unpack_from(view, offset)
                offset += 4
                parts.append(bytes(view[offset : offset + size]))
                offset += size
            if offset != len(data) or header["k"] not in ("json", "chunks", "events"):
                raise EntryError("a truncated or unknown entry")
            usage = Usage(**header["u"]) if header.get("u") else None
            return cls(header["k"], tuple(parts), header["m"], usage, header["p"], float(header["t"]))
        except (struct.error, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, EntryError):
                raise
            raise EntryError(f"a damaged entry ({type(exc).__name__})") from None


def _usage_fields(usage: Usage) -> dict[str, Any]:  # a dataclass: every field, by name
    return {name: getattr(usage, name) for name in usage.__dataclass_fields__}
