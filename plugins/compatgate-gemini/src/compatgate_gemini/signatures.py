"""Gemini's thought signatures on the pivot side: where they travel is the core's convention
(`compatgate.pivot`); what Gemini accepts in place of a lost one is here."""

from __future__ import annotations

__all__ = ["SKIP_VALIDATOR"]

# Documented by Google for histories that lack signatures (e.g. made by another model): Gemini
# then skips the check instead of refusing the request.
SKIP_VALIDATOR = "skip_thought_signature_validator"
