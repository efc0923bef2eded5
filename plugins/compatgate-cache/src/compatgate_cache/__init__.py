"""compatgate-cache: an exact-match response cache for compatgate.

Chat completions, completions, embeddings and ``/responses`` answers are kept per tenant
(``scope``: the key, its team, or everyone) in memory (an LRU bounded by bytes) or in Redis
(shared by replicas, a TTL per entry), streams included: a streamed miss is recorded as it is
relayed and kept only if it finished cleanly; a hit replays as a valid stream or as a complete
answer, whichever the request asked for. ``Cache-Control: no-cache`` / ``no-store``, the
``x-compatgate-cache`` header, purges through ``compatgate cache purge`` and
``POST /admin/cache/purge``. Configure ``[plugins.cache]``; see the README.
"""

from .answers import ChunkCheck, chunks_from_completion, completion_from_chunks, storable
from .backend import Backend, BackendUnavailable, MemoryBackend
from .entry import Entry, EntryError
from .events import completed_response, events_from_response
from .keys import IGNORED, CacheKey, cache_key, namespace_of
from .plugin import CACHED_ENDPOINTS, HEADER, STATE_KEY, Cache, CacheNote
from .purge import PurgeError, Target, parse_target
from .redis_backend import RedisBackend
from .replay import replay
from .settings import ModelPolicy, Settings, parse_settings

__all__ = [
    "CACHED_ENDPOINTS",
    "HEADER",
    "IGNORED",
    "STATE_KEY",
    "Backend",
    "BackendUnavailable",
    "Cache",
    "CacheKey",
    "CacheNote",
    "ChunkCheck",
    "Entry",
    "EntryError",
    "MemoryBackend",
    "ModelPolicy",
    "PurgeError",
    "RedisBackend",
    "Settings",
    "Target",
    "cache_key",
    "chunks_from_completion",
    "completed_response",
    "completion_from_chunks",
    "events_from_response",
    "namespace_of",
    "parse_settings",
    "parse_target",
    "replay",
    "storable",
]
