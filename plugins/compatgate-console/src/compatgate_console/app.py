"""`ConsoleApp`: the console's ASGI app (Starlette), its templates and what its views share.

Pages are server-rendered Jinja2 templates (autoescaped) with a little progressive enhancement
(htmx for filters and paging, uPlot for charts, both vendored under ``static/``); every page
works without JavaScript. `SecurityHeaders` puts a strict Content-Security-Policy on every
response. Routes are listed in `routes`, each behind `auth.guard`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from compatgate_billing import Billing, Store
from compatgate_billing.reports import LedgerReports

from . import views_auth, views_gateway, views_keys, views_log, views_usage
from .formats import date, money, ms, num, when
from .security import SecurityHeaders
from .series import SeriesCache
from .session import Sessions, SignInLimiter

if TYPE_CHECKING:
    from .plugin import Console
    from .settings import ConsoleSettings

__all__ = ["ConsoleApp", "routes"]

HERE = Path(__file__).resolve().parent


def routes() -> list[Route | Mount]:
    """Every route of the console (paths relative to where it is mounted)."""
    return [
        Route("/", views_auth.home, name="home"),
        Route("/signin", views_auth.signin_form, name="signin"),
        Route("/signin", views_auth.signin, methods=["POST"], name="signin_post"),
        Route("/signout", views_auth.signout, methods=["POST"], name="signout"),
        Route("/overview", views_usage.overview, name="overview"),
        Route("/me", views_usage.my_key, name="me"),
        Route("/api/usage", views_usage.usage_data, name="usage_data"),
        Route("/api/me/usage", views_usage.my_usage_data, name="my_usage_data"),
        Route("/log", views_log.log_page, name="log"),
        Route("/log.csv", views_log.log_csv, name="log_csv"),
        Route("/api/log", views_log.log_data, name="log_data"),
        Route("/me/log", views_log.my_log_page, name="my_log"),
        Route("/me/log.csv", views_log.my_log_csv, name="my_log_csv"),
        Route("/api/me/log", views_log.my_log_data, name="my_log_data"),
        Route("/keys", views_keys.key_list, name="keys"),
        Route("/keys", views_keys.create_key, methods=["POST"], name="create_key"),
        Route("/keys/new", views_keys.new_key, name="new_key"),
        Route("/keys/{key_id}", views_keys.key_page, name="key"),
        Route("/keys/{key_id}/{action}", views_keys.key_action, methods=["POST"], name="key_action"),
        Route("/api/keys/{key_id}/usage", views_usage.key_usage_data, name="key_usage_data"),
        Route("/models", views_gateway.models_page, name="models"),
        Route("/providers", views_gateway.providers_page, name="providers"),
        Mount("/static", _Static(), name="static"),
    ]


class _Static:
    """The vendored and own assets, cacheable for an hour."""

    def __init__(self) -> None:
        self.files = StaticFiles(directory=HERE / "static")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def cached(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"cache-control", b"public, max-age=3600"))
            await send(message)

        await self.files(scope, receive, cached)


class ConsoleApp:
    """The console of one gateway, as an ASGI app."""

    def __init__(self, console: Console, settings: ConsoleSettings) -> None:
        self.console = console
        self.settings = settings
        self.gateway = console.gateway
        billing = console.billing
        assert billing.settings is not None
        self.sessions = Sessions(billing.settings.secret, settings.session_hours)
        self.limiter = SignInLimiter(settings.signin_attempts_per_minute)
        self._series: SeriesCache | None = None
        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        environment.filters.update(money=money, num=num, when=when, ms=ms, date=date)
        environment.globals["url_for"] = _path_for
        environment.globals["table_rows"] = _table_rows
        self.templates = Jinja2Templates(env=environment)
        app = Starlette(routes=routes())
        app.state.console = self
        self._router = app.router
        self.app = SecurityHeaders(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # url_for resolves against scope["router"]: a host app's router does not know ours
        # and links are made from app_root_path, which a host's Mount leaves at the host's root
        root = scope.get("root_path", "")
        await self.app({**scope, "router": self._router, "app_root_path": root}, receive, send)

    @property
    def billing(self) -> Billing:
        return self.console.billing

    async def store(self) -> Store:
        """Billing's open store (starting the gateway first when nothing has started it)."""
        if self.billing.store is None:
            await self.gateway.startup()
        store = self.billing.store
        assert store is not None, "the billing store is not open"
        return store

    async def series(self) -> SeriesCache:
        store = await self.store()
        if self._series is None or self._series.reports.store is not store:
            self._series = SeriesCache(LedgerReports(store))
        return self._series

    async def reports(self) -> LedgerReports:
        return LedgerReports(await self.store())

    @staticmethod
    def now() -> int:
        return time.time_ns() // 1_000_000

    def api_base_url(self, request: Request) -> str:
        """The API's URL as clients reach it: ``public_base_url``, else this host's ``/v1``."""
        if self.settings.public_base_url:
            return self.settings.public_base_url
        return f"{request.url.scheme}://{request.url.netloc}/v1"

    def render(
        self, request: Request, template: str, context: dict[str, Any], *, status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        session = getattr(request.state, "session", None)
        context = {"session": session, "title": self.settings.title, "nav": None, **context}
        response = self.templates.TemplateResponse(request, template, context, status_code=status,
                                                   headers=headers)
        return response  # type: ignore[return-value]


@jinja2.pass_context
def _path_for(context: dict[str, Any], name: str, /, **params: Any) -> str:
    """The path (not the absolute URL) of a route: links stay on whatever origin and scheme
    the browser used, behind a proxy too."""
    return context["request"].url_for(name, **params).path  # type: ignore[no-any-return]


def _table_rows(chart: dict[str, Any]) -> list[tuple[int, list[float]]]:
    """The rows of a chart's table: each time bucket that has a value, with each series' value."""
    columns = [series["values"] for series in chart["series"]]
    return [(t, values) for t, *values in zip(chart["t"], *columns, strict=True) if any(values)]
