"""Sessions: a key exchanged for a signed, expiring cookie; CSRF tokens; sign-in throttling.

The cookie holds no secret: a role (``operator`` or ``key``), the key's id, a CSRF token and a
*fingerprint* of what was signed in with (an HMAC of the admin key, or of the key's stored
digest), signed with itsdangerous under a key derived from billing's server secret, so every
worker and replica accepts it and a database copy alone cannot forge it. Each request checks
the fingerprint again, so a rotated, disabled, revoked or expired key (or a changed admin key)
ends its sessions at once. The cookie is ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when the
console is served over HTTPS, limited to the console's path, and expires after
``session_hours``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = ["COOKIE", "SIGNIN_COOKIE", "Session", "Sessions", "SignInLimiter", "same_token"]

COOKIE = "cg_console"
SIGNIN_COOKIE = "cg_console_signin"  # the CSRF token of the sign-in form (before a session)
Role = Literal["operator", "key"]


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in visitor: an operator (``key_id`` None) or the holder of key ``key_id``."""

    role: Role
    key_id: str | None
    csrf: str
    fingerprint: str

    @property
    def operator(self) -> bool:
        return self.role == "operator"


class Sessions:
    """Issues and reads session cookies (see the module's documentation)."""

    def __init__(self, server_secret: bytes, hours: float) -> None:
        self._key = hmac.digest(server_secret, b"compatgate-console-session", "sha256")
        self._serializer = URLSafeTimedSerializer(self._key, salt="compatgate-console")
        self.max_age = int(hours * 3600)

    def fingerprint(self, what: str) -> str:
        """An HMAC of ``what`` (the admin key, a key's digest) under the session key."""
        return hmac.new(self._key, what.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, role: Role, key_id: str | None, fingerprint: str) -> tuple[str, Session]:
        session = Session(role, key_id, secrets.token_urlsafe(24), fingerprint)
        value = self._serializer.dumps([role, key_id, session.csrf, fingerprint])
        return value, session

    def read(self, value: str | None) -> Session | None:
        """The session in a cookie value, None when absent, forged, malformed or expired."""
        if not value:
            return None
        try:
            data: Any = self._serializer.loads(value, max_age=self.max_age)
        except BadSignature:  # SignatureExpired included
            return None
        if not (isinstance(data, list) and len(data) == 4 and data[0] in ("operator", "key")):
            return None
        return Session(data[0], data[1], str(data[2]), str(data[3]))


def same_token(given: str | None, expected: str | None) -> bool:
    """Whether a submitted token matches, compared in constant time."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


class SignInLimiter:
    """At most ``per_minute`` sign-in attempts per client address in any 60 seconds (in this
    process); `retry_after` says how long to wait, 0 when an attempt may go ahead (and counts it)."""

    def __init__(self, per_minute: int, clock: Any = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._attempts: dict[str, deque[float]] = {}

    def retry_after(self, client: str) -> float:
        now = self.clock()
        attempts = self._attempts.get(client)
        if attempts is None:
            if len(self._attempts) >= 10_000:
                self._prune(now)
            attempts = self._attempts[client] = deque()
        while attempts and attempts[0] <= now - 60:
            attempts.popleft()
        if len(attempts) >= self.per_minute:
            return attempts[0] + 60 - now
        attempts.append(now)
        return 0.0

    def _prune(self, now: float) -> None:
        self._attempts = {c: a for c, a in self._attempts.items() if a and a[-1] > now - 60}
