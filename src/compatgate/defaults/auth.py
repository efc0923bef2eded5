"""Default plugin: accept the keys listed in ``[gateway] api_keys``, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from starlette.requests import Request

from ..context import Principal
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from ..gateway import Gateway


_DIGESTS = "compatgate.static_key_digests"  # gateway.state: (the keys, their SHA-256 digests)


@hookimpl(trylast=True)
def authenticate(gateway: Gateway, request: Request, api_key: str | None) -> Principal | None:
    """The key's position in the list names it (``static:0``): ids never derive from secrets."""
    if api_key is None:
        return None
    keys = gateway.config.gateway.api_keys
    digests = gateway.state.get(_DIGESTS)
    if digests is None or digests[0] is not keys:
        digests = gateway.state[_DIGESTS] = (keys, tuple(hashlib.sha256(k.encode()).digest() for k in keys))
    offered = hashlib.sha256(api_key.encode()).digest()
    match = None
    for index, digest in enumerate(digests[1]):
        # Every key is compared, whatever matched, so the time does not tell which one did.
        if hmac.compare_digest(offered, digest) and match is None:
            match = Principal(key_id=f"static:{index}")
    return match
