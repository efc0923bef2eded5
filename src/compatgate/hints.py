"""Suggestions for mistakes in names: the closest known name, for ``did you mean ...?`` hints.

Used where a name is refused (a configuration key, a provider type, a hook, a plugin table), so
that the message points to the fix instead of only listing what exists.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "did_you_mean"]


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The known name ``word`` most likely meant: a close spelling (``admit_requests`` ->
    ``admit_request``), the same name in another case, or a name it contains or is contained
    in (``openai-compatible`` -> ``openai``); None when nothing is near."""
    options = sorted({choice for choice in choices if choice and choice != word})
    if not word or not options:
        return None
    lowered = word.lower()
    for choice in options:
        if choice.lower() == lowered:
            return choice
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.75)
    if matches:
        return matches[0]
    contained = [c for c in options if len(c) >= 3 and (c.lower() in lowered or lowered in c.lower())]
    if contained:
        return max(contained, key=len)
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, choices: Iterable[str], *, template: str = "'{}'") -> str:
    """``" (did you mean 'x'?)"`` for the `closest` name (written with ``template``), or ``""``."""
    match = closest(word, choices)
    return f" (did you mean {template.format(match)}?)" if match else ""
