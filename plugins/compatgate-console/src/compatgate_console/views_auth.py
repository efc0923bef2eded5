"""Signing in and out: a key (the billing admin key, or a virtual key) is exchanged for a
session cookie; the sign-in form has its own CSRF token (a cookie and a field that must match)
and attempts are throttled per client address."""

from __future__ import annotations

import math
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .auth import check_key, console_of, current_session, guard
from .session import COOKIE, SIGNIN_COOKIE, same_token

__all__ = ["home", "signin", "signin_form", "signout"]


@guard("public")
async def home(request: Request) -> Response:
    session = await current_session(request)
    if session is None:
        return RedirectResponse(request.url_for("signin").path, status_code=303)
    return RedirectResponse(request.url_for("overview" if session.operator else "me").path, status_code=303)


def _cookie_path(request: Request) -> str:
    return (request.scope.get("root_path") or "") + "/"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _form(request: Request, message: str | None = None, status: int = 200,
          headers: dict[str, str] | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    response = console_of(request).render(
        request, "signin.html", {"csrf": token, "message": message}, status=status, headers=headers
    )
    response.set_cookie(SIGNIN_COOKIE, token, max_age=3600, path=_cookie_path(request),
                        secure=_secure(request), httponly=True, samesite="strict")
    return response


@guard("public")
async def signin_form(request: Request) -> Response:
    if await current_session(request) is not None:
        return RedirectResponse(request.url_for("home").path, status_code=303)
    return _form(request)


@guard("public")
async def signin(request: Request) -> Response:
    console = console_of(request)
    client = request.client.host if request.client else "unknown"
    wait = console.limiter.retry_after(client)
    if wait:
        seconds = math.ceil(wait)
        return _form(request, f"Too many sign-in attempts: try again in {seconds} seconds.", 429,
                     {"retry-after": str(seconds)})
    form = await request.form()
    token = form.get("csrf")
    if not same_token(token if isinstance(token, str) else None, request.cookies.get(SIGNIN_COOKIE)):
        return _form(request, "The form expired: please sign in again.", 403)
    key = form.get("key")
    if not isinstance(key, str) or not key.strip():
        return _form(request, "Enter the admin key or your API key.", 400)
    result = await check_key(console, key)
    if isinstance(result, str):
        return _form(request, result, 401)
    role, key_id, fingerprint = result
    value, _ = console.sessions.issue(role, key_id, fingerprint)
    response = RedirectResponse(request.url_for("overview" if role == "operator" else "me").path,
                                status_code=303)
    response.set_cookie(COOKIE, value, max_age=console.sessions.max_age, path=_cookie_path(request),
                        secure=_secure(request), httponly=True, samesite="strict")
    response.delete_cookie(SIGNIN_COOKIE, path=_cookie_path(request), secure=_secure(request),
                           httponly=True, samesite="strict")
    return response


@guard("any")
async def signout(request: Request) -> Response:
    response = RedirectResponse(request.url_for("signin").path, status_code=303)
    response.delete_cookie(COOKIE, path=_cookie_path(request), secure=_secure(request),
                           httponly=True, samesite="strict")
    return response
