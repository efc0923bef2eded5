"""compatgate: an OpenAI-compatible LLM API gateway that mounts inside any ASGI app."""

from .config import Config, GatewaySettings, ModelConfig, ProviderConfig, load_config
from .context import Principal, RequestContext, Route
from .exceptions import (
    AuthenticationError,
    ConfigError,
    GatewayError,
    InsufficientQuotaError,
    InvalidRequestError,
    MethodNotAllowedError,
    ModelNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RequestTooLargeError,
    UpstreamError,
    UpstreamStreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from .gateway import Gateway
from .hooks import Hooks, withdraw_hooks
from .hookspecs import hookimpl
from .metering import AudioMeter, ImageMeter, Meter, SpeechMeter, TokenMeter, Units
from .operations import (
    DROPPED_TOOLS_HEADER,
    IGNORED_HEADER,
    OPENAI,
    Conversion,
    Dialect,
    Encoder,
    Operation,
    form_reader,
    json_reader,
)
from .provider import HTTPProvider, Provider, decode_event, segment
from .relay import stream_error
from .replies import Answer, Chunk, ChunkStream, RawReply, Reply, Result
from .signing import Signer
from .sse import SSEDecoder, ServerSentEvent, encode_event
from .timeouts import call_provider
from .usage import Attempt, Usage, UsageRecord

__version__ = "0.1.0"

__all__ = [
    "DROPPED_TOOLS_HEADER",
    "IGNORED_HEADER",
    "OPENAI",
    "Answer",
    "Attempt",
    "AudioMeter",
    "AuthenticationError",
    "Chunk",
    "ChunkStream",
    "Config",
    "ConfigError",
    "Conversion",
    "Dialect",
    "Encoder",
    "Gateway",
    "GatewayError",
    "GatewaySettings",
    "HTTPProvider",
    "Hooks",
    "ImageMeter",
    "InsufficientQuotaError",
    "InvalidRequestError",
    "Meter",
    "MethodNotAllowedError",
    "ModelConfig",
    "ModelNotFoundError",
    "NotFoundError",
    "Operation",
    "PermissionDeniedError",
    "Principal",
    "Provider",
    "ProviderConfig",
    "RateLimitError",
    "RawReply",
    "Reply",
    "RequestContext",
    "RequestTooLargeError",
    "Result",
    "Route",
    "SSEDecoder",
    "ServerSentEvent",
    "Signer",
    "SpeechMeter",
    "TokenMeter",
    "Units",
    "UpstreamError",
    "UpstreamStreamError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "Usage",
    "UsageRecord",
    "call_provider",
    "decode_event",
    "encode_event",
    "form_reader",
    "hookimpl",
    "json_reader",
    "load_config",
    "segment",
    "stream_error",
    "withdraw_hooks",
]
