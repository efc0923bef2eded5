"""The Gemini API served to clients, for any upstream: the protocol pieces the core wires.

The pivot between protocols is OpenAI chat completions (and embeddings). Everything here is
pure and synchronous; the core does HTTP, auth, routing, billing, SSE framing of its own
streams, disconnects and timeouts.

- `validate` (``generateContent``/``streamGenerateContent``), `validate_count_tokens`,
  `validate_embed_content`, `validate_batch_embed_contents`: 400s in the client's terms;
- `to_chat` -> `ChatRequest` (the pivot request and what it had to drop), `wants_thoughts`;
- `from_chat`: a ``chat.completion`` -> ``GenerateContentResponse``;
- `ContentStream`: ``chat.completion.chunk`` dicts -> ``streamGenerateContent`` bytes
  (``?alt=sse`` or the JSON array), `stream_error` for a stream that fails before any chunk;
- `error_body`, `error_object`: errors in Google's format;
- `embed_to_openai`, `embed_from_openai`, `count_tokens_estimate`;
- `Signer`: what the gateway provides to sign the ``thoughtSignature`` envelopes that carry
  upstream state through Gemini clients (`envelope`); `unwrap_signatures` turns them back into
  real Gemini signatures for a native Gemini upstream.
"""

from .embed import MEDIA_TOKENS, count_tokens_estimate, embed_from_openai, embed_to_openai
from .envelope import Signer, State
from .errors import STATUS_NAMES, error_body, error_object, status_name
from .native import unwrap_signatures, usage_of
from .reply import finish_reason, from_chat, usage_metadata
from .request import EFFORT_BUDGETS, ChatRequest, to_chat, wants_thoughts
from .stream import ContentStream, stream_error
from .validate import (
    validate,
    validate_batch_embed_contents,
    validate_count_tokens,
    validate_embed_content,
)

__all__ = [
    "EFFORT_BUDGETS",
    "MEDIA_TOKENS",
    "STATUS_NAMES",
    "ChatRequest",
    "ContentStream",
    "Signer",
    "State",
    "count_tokens_estimate",
    "embed_from_openai",
    "embed_to_openai",
    "error_body",
    "error_object",
    "finish_reason",
    "from_chat",
    "status_name",
    "stream_error",
    "to_chat",
    "unwrap_signatures",
    "usage_metadata",
    "usage_of",
    "validate",
    "validate_batch_embed_contents",
    "validate_count_tokens",
    "validate_embed_content",
    "wants_thoughts",
]
