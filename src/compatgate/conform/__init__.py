"""Conformance: every JSON body and stream chunk a client receives follows the OpenAI schema.

Many "OpenAI-compatible" servers are not quite: they leave out required fields (``logprobs``,
``refusal``, ``created``...), send ``null`` where the schema wants an array or an object,
finish reasons outside the enum, or floats when base64 embeddings were asked. Strictly typed
clients (openai-go, async-openai, the Java SDK, anything generated from the OpenAPI document)
reject such bytes. Per provider, ``conform`` chooses what the gateway does about it:

``auto`` (default)
    Fix what is wrong, leave the rest: hand-written checks of exactly the fields each schema
    requires (no JSON Schema validation on the hot path) decide whether an object conforms; a
    conforming object is relayed as the upstream's own bytes, a non-conforming one is repaired
    in place (required fields added with neutral values: ``null`` for nullable ones, generated
    ids, the request's model, ``created`` now; nulls the schema does not allow removed; finish
    reasons mapped onto the enum; base64 embeddings encoded) and re-serialised. Fields the
    schema does not define (vendor extras: ``reasoning_content``, ``timings``, ``stop_reason``)
    are kept: the schema allows them and OpenAI's SDKs ignore them.
``strict``
    The same repairs, then every object is rebuilt with only the fields the schema defines, in
    the order OpenAI writes them, and re-serialised, for decoders that refuse unknown fields
    (vendor extras are dropped, reasoning text included).
``off``
    The upstream's bytes, untouched.

What can never be repaired without inventing content (no message, a tool call without a name,
a vector of vectors) and what the upstream itself calls broken (``finish_reason`` ``"abort"``
or ``"error"``) raises `ConformError`, a 502 ``upstream_error`` in the client's format (in a
stream: the relay's error event, no ``[DONE]``).

Wiring (done by the relay and the endpoints): `conform_reply` for a non-streamed answer,
`ConformingStream` around a provider's `ChunkStream` (or `StreamConformer.payload` per chunk).
"""

from ._base import ConformError
from .embedding import decode_embedding, encode_embedding
from .reply import MODES, Mode, conform_mode, conform_reply
from .stream import ConformingStream, StreamConformer

__all__ = [
    "MODES",
    "ConformError",
    "ConformingStream",
    "Mode",
    "StreamConformer",
    "conform_mode",
    "conform_reply",
    "decode_embedding",
    "encode_embedding",
]
