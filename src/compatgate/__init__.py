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
from .hookspecs import hookimpl
from .hooks import withdraw_hooks
from .provider import Chunk, ChunkStream, HTTPProvider, Provider, RawReply, Reply, decode_event
from .sse import SSEDecoder, ServerSentEvent, encode_event
from .timeouts import call_provider
from .usage import Attempt, Usage, UsageRecord

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "AuthenticationError",
    "Chunk",
    "ChunkStream",
    "Config",
    "ConfigError",
    "Gateway",
    "GatewayError",
    "GatewaySettings",
    "HTTPProvider",
    "InsufficientQuotaError",
    "InvalidRequestError",
    "MethodNotAllowedError",
    "ModelConfig",
    "ModelNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "Principal",
    "Provider",
    "ProviderConfig",
    "RateLimitError",
    "RawReply",
    "Reply",
    "RequestContext",
    "RequestTooLargeError",
    "Route",
    "SSEDecoder",
    "ServerSentEvent",
    "UpstreamError",
    "UpstreamStreamError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "Usage",
    "UsageRecord",
    "call_provider",
    "decode_event",
    "encode_event",
    "hookimpl",
    "load_config",
    "withdraw_hooks",
]
