"""How an operation is metered: what a request may cost before it goes upstream, and what it used.

Every operation has a `Meter`. Before the upstream call, the gateway measures the body *as it
is sent upstream* (after `transform_request` and any protocol conversion, ``model`` replaced)
into `Units` — the worst case: the prompt estimate, the output cap that body really carries
(times its number of choices), images, seconds of audio, characters of speech — and puts them
in ``ctx.units`` for billing and rate limits to reserve against. When the answer is in, the
meter settles what was used (the images returned, the audio's duration...) into the
`UsageRecord`'s ``units``; tokens are in its ``usage``.

A request that sends no output limit is measured with the model's configured
``max_output_tokens`` (or ``[gateway] default_max_output_tokens``), and the gateway then sends
that limit upstream itself, so what was reserved and what can be produced never diverge. With
neither configured, ``Units.output_tokens`` is None and each consumer applies its own default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .usage import estimate_prompt_tokens

__all__ = [
    "AUDIO_BYTES_PER_SECOND",
    "CHAT_METER",
    "AudioMeter",
    "ImageMeter",
    "Meter",
    "SpeechMeter",
    "TokenMeter",
    "Units",
]

Body = dict[str, Any]

#: Bytes of audio per second assumed for the worst case of an upload (16 kbit/s, the low end
#: of speech codecs) and, when the answer gives no duration, for the settled estimate
#: (128 kbit/s, a common MP3 rate).
AUDIO_BYTES_PER_SECOND = (2_000, 16_000)


@dataclass(frozen=True, slots=True)
class Units:
    """What a request may cost (``ctx.units``: the worst case, before the upstream call) or
    what it used (``UsageRecord.units``). ``output_tokens`` is the output cap times the choices
    (None when neither the request nor the configuration sets one); ``capped`` says whether the
    request carried its own cap. ``estimated`` marks settled units the answer did not state."""

    prompt_tokens: int = 0
    output_tokens: int | None = 0
    images: int = 0
    audio_seconds: float = 0.0
    characters: int = 0
    capped: bool = True
    estimated: bool = False

    @property
    def tokens(self) -> int:
        """Prompt plus output tokens (the output cap counted as 0 when unknown)."""
        return self.prompt_tokens + (self.output_tokens or 0)


class Meter:
    """Measures an operation's upstream-bound body; the base meters nothing (``Units()``).
    ``settles`` says whether `settle` reads the answer (tokens are the usage's business)."""

    settles = False

    def measure(self, body: Body, model_max: int | None) -> Units:
        """The worst case of ``body``; ``model_max`` is the configured output cap, if any."""
        return Units()

    def cap(self, body: Body, limit: int) -> None:
        """Write the output cap ``limit`` into a body that carries none (see `Units.capped`)."""

    def settle(self, worst: Units, answer: Body | None, sent_bytes: int = 0) -> Units | None:
        """The units the request used, from the worst case and the JSON answer (None when the
        answer is not JSON); ``sent_bytes`` is the size of an upload. None: tokens only."""
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


class TokenMeter(Meter):
    """Token-priced operations. ``caps`` are the fields that limit the output (the largest one
    present wins: an upstream honours one of them), ``path`` the object that holds them
    (``("generationConfig",)`` for Gemini), ``choices`` the fields that multiply it,
    ``output=False`` for operations that generate no tokens (embeddings, moderations).
    ``prompt`` estimates the input tokens of the body."""

    def __init__(
        self,
        *caps: str,
        choices: Sequence[str] = ("n",),
        path: Sequence[str] = (),
        output: bool = True,
        prompt: Callable[[Mapping[str, Any]], int] = estimate_prompt_tokens,
    ) -> None:
        self.caps, self.choices, self.path, self.output, self.prompt = caps, tuple(choices), tuple(path), output, prompt

    def _holder(self, body: Body, create: bool = False) -> Body | None:
        holder: Any = body
        for key in self.path:
            inner = holder.get(key)
            if not isinstance(inner, dict):
                if not create:
                    return None
                inner = holder[key] = {}
            holder = inner
        return holder  # type: ignore[no-any-return]

    def measure(self, body: Body, model_max: int | None) -> Units:
        prompt = self.prompt(body)
        if not self.output:
            return Units(prompt, 0)
        holder = self._holder(body) or {}
        given = [limit for name in self.caps if (limit := _int(holder.get(name))) is not None]
        cap = max(given) if given else model_max
        choices = max([_int(holder.get(name)) or _int(body.get(name)) or 1 for name in self.choices] or [1])
        return Units(prompt, None if cap is None else cap * choices, capped=bool(given))

    def cap(self, body: Body, limit: int) -> None:
        if self.output and self.caps:
            holder = self._holder(body, create=True)
            assert holder is not None
            holder[self.caps[0]] = limit


class ImageMeter(Meter):
    """Images: ``n`` images (default 1), the prompt's tokens; settled from the images returned."""

    settles = True

    def measure(self, body: Body, model_max: int | None) -> Units:
        n = _count(body.get("n")) or 1
        return Units(estimate_prompt_tokens({"prompt": body.get("prompt")}), 0, images=n)

    def settle(self, worst: Units, answer: Body | None, sent_bytes: int = 0) -> Units | None:
        data = answer.get("data") if answer is not None else None
        if isinstance(data, list):
            return replace(worst, images=len(data), output_tokens=0)
        return replace(worst, output_tokens=0, estimated=True)


class AudioMeter(Meter):
    """Transcriptions and translations, priced per second of audio: the worst case from the
    upload's size (`AUDIO_BYTES_PER_SECOND`), settled from the answer's ``duration`` or
    ``usage.seconds``, else estimated from the bytes uploaded."""

    settles = True

    def __init__(self, upload_bytes: Callable[[Body], int]) -> None:
        self.upload_bytes = upload_bytes

    def measure(self, body: Body, model_max: int | None) -> Units:
        return Units(0, 0, audio_seconds=math.ceil(self.upload_bytes(body) / AUDIO_BYTES_PER_SECOND[0]))

    def settle(self, worst: Units, answer: Body | None, sent_bytes: int = 0) -> Units | None:
        seconds = None
        if answer is not None:
            usage = answer.get("usage")
            seconds = _number(answer.get("duration"))
            if seconds is None and isinstance(usage, dict) and usage.get("type") == "duration":
                seconds = _number(usage.get("seconds"))
        if seconds is not None:
            return Units(0, 0, audio_seconds=min(float(seconds), worst.audio_seconds or math.inf))
        estimate = math.ceil(sent_bytes / AUDIO_BYTES_PER_SECOND[1]) if sent_bytes else worst.audio_seconds
        return Units(0, 0, audio_seconds=min(estimate, worst.audio_seconds), estimated=True)


class SpeechMeter(Meter):
    """Speech, priced per character of ``input``: known exactly from the request."""

    settles = True

    def measure(self, body: Body, model_max: int | None) -> Units:
        text = body.get("input")
        return Units(0, 0, characters=len(text) if isinstance(text, str) else 0)

    def settle(self, worst: Units, answer: Body | None, sent_bytes: int = 0) -> Units | None:
        return worst


def _count(value: Any) -> int | None:
    """A positive whole number given as an int or as a form field's text."""
    number = _number(value)
    return int(number) if number is not None and number >= 1 and number == int(number) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


#: The meter of Chat Completions, the pivot: what an operation served through chat is metered by.
CHAT_METER = TokenMeter("max_completion_tokens", "max_tokens", "n_predict", "max_new_tokens")
