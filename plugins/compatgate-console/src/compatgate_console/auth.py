"""Who is signed in, and the guard every console endpoint goes through.

`guard(role)` wraps an endpoint: without a valid session a page redirects to the sign-in page
and a data endpoint answers 401; a key holder asking for an operator endpoint gets 403; every
``POST`` must carry the session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``)
and, when the browser sends one, an ``Origin`` of the console's own host (403 otherwise). The
wrapped endpoint keeps its role in ``endpoint.role`` (the tests check every route has one).
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from compatgate import AuthenticationError
from compatgate_billing import KeyPrincipal

from .session import COOKIE, Session, same_token

if TYPE_CHECKING:
    from .app import ConsoleApp

__all__ = ["Endpoint", "SignInResult", "check_key", "current_session", "guard"]

Endpoint = Callable[[Request], Awaitable[Response]]
Role = Literal["public", "any", "operator"]


def console_of(request: Request) -> ConsoleApp:
    return request.app.state.console  # type: ignore[no-any-return]


async def current_session(request: Request) -> Session | None:
    """The request's session, checked against what it was signed in with (see session.py)."""
    console = console_of(request)
    session = console.sessions.read(request.cookies.get(COOKIE))
    if session is None:
        return None
    billing = console.billing
    if session.operator:
        admin_key = billing.settings.admin_key if billing.settings else None
        if admin_key is None or not hmac.compare_digest(
            session.fingerprint, console.sessions.fingerprint(f"operator:{admin_key}")
        ):
            return None
        return session
    store = await console.store()
    key = await store.get_key(session.key_id or "")
    if key is None or key.secret_hash is None or key.state(console.now()) != "active":
        return None
    if not hmac.compare_digest(session.fingerprint, console.sessions.fingerprint(f"key:{key.secret_hash}")):
        return None
    return session


SignInResult = tuple[Literal["operator", "key"], str | None, str] | str


async def check_key(console: ConsoleApp, text: str) -> SignInResult:
    """``(role, key id, fingerprint)`` for a good admin or virtual key, else the message to show."""
    billing = console.billing
    text = text.strip()
    admin_key = billing.settings.admin_key if billing.settings else None
    if admin_key is not None and hmac.compare_digest(text.encode(), admin_key.encode()):
        return "operator", None, console.sessions.fingerprint(f"operator:{admin_key}")
    await console.store()
    try:
        principal = await billing.authenticate(api_key=text)
    except AuthenticationError as exc:
        return exc.message
    if not isinstance(principal, KeyPrincipal):
        return "This key is not valid here."
    key = await billing.store.get_key(principal.key_id)  # type: ignore[union-attr]
    if key is None or key.secret_hash is None:
        return "This key is not valid here."
    return "key", key.id, console.sessions.fingerprint(f"key:{key.secret_hash}")


def guard(role: Role, *, data: bool = False) -> Callable[[Endpoint], Endpoint]:
    """Wrap an endpoint so that only ``role`` reaches it (``public``: anyone; ``any``: operators
    and key holders; ``operator``: operators); ``data`` endpoints answer 401/403 in JSON."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            if request.method == "POST" and not _same_origin(request):
                return _refuse(request, 403, "This request came from another site.", data)
            if role == "public":
                return await endpoint(request)
            session = await current_session(request)
            if session is None:
                if data or request.method != "GET":
                    return _refuse(request, 401, "Sign in first.", True)
                return RedirectResponse(request.url_for("signin").path, status_code=303)
            request.state.session = session  # (the refusal page shows the visitor's own menu)
            if role == "operator" and not session.operator:
                return _refuse(request, 403, "This page is for operators.", data)
            if request.method == "POST":
                form = await request.form()
                token = request.headers.get("x-csrf-token") or form.get("csrf")
                if not same_token(token if isinstance(token, str) else None, session.csrf):
                    return _refuse(request, 403, "The form expired: reload the page and try again.", data)
            return await endpoint(request)

        guarded.role = role  # type: ignore[attr-defined]
        return guarded

    return decorate


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # not sent by this browser for this request: the CSRF token decides
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _refuse(request: Request, status: int, message: str, data: bool) -> Response:
    if data:
        return JSONResponse({"error": {"message": message, "status": status}}, status_code=status)
    return console_of(request).render(request, "error.html", {"message": message}, status=status)
