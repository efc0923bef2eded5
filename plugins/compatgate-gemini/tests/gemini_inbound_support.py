"""What the tests of the Gemini inbound direction share: a signer, the OpenAI recordings, the
google-genai types."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

import orjson

from compatgate import SSEDecoder

SHARED = Path(os.environ.get("COMPATGATE_SHARED", Path(__file__).resolve().parents[3].parent / "shared"))
OPENAI_SSE = SHARED / "fixtures" / "openai-sse"
OPENAI_RECORDINGS = sorted(p.name for p in OPENAI_SSE.glob("*.bin"))


class HMACSigner:
    """A gateway signer as the core builds one: ``base64url(payload).base64url(HMAC-SHA256)``."""

    def __init__(self, key: bytes = b"gateway-secret") -> None:
        self.key = key

    def _mac(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.digest(self.key, payload, hashlib.sha256)).decode().rstrip("=")

    def sign(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._mac(payload)

    def verify(self, token: str) -> bytes | None:
        data, _, mac = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
        except ValueError:
            return None
        return payload if hmac.compare_digest(mac, self._mac(payload)) else None


def openai_chunks(name: str) -> list[dict[str, Any]]:
    """The chunks of a recorded OpenAI stream, up to ``[DONE]``."""
    events = SSEDecoder().feed((OPENAI_SSE / name).read_bytes())
    assert events[-1].data == b"[DONE]", name
    return [orjson.loads(event.data) for event in events[:-1]]


def sse_responses(data: bytes) -> list[dict[str, Any]]:
    """The JSON objects of Gemini's ``?alt=sse`` framing (each ``data: ...\\r\\n\\r\\n``)."""
    assert data.endswith(b"\r\n\r\n"), data[-40:]
    blocks = [block for block in data.split(b"\r\n\r\n") if block.strip()]
    assert all(block.startswith(b"data: ") for block in blocks), blocks
    return [orjson.loads(block[6:]) for block in blocks]
