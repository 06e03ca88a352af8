"""The application factory. ``create_app(settings)`` builds nothing until its lifespan runs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI
from starlette.responses import Response

from scoreboard import __version__, bootstrap
from scoreboard.settings import Settings
from scoreboard.web import asyncapi, errors, openapi
from scoreboard.web.endpoints import admin, boards, docs, page, readiness, reads, update, webhooks
from scoreboard.web.guards.admin import AdminGate
from scoreboard.web.guards.client_address import TrustedProxies
from scoreboard.web.guards.limits import RequestLimit
from scoreboard.web.guards.origins import AllowedOrigins, JsonCorsMiddleware
from scoreboard.web.guards.request_id import RequestIdMiddleware
from scoreboard.web.hot_paths import ScoreboardApp
from scoreboard.web.live import channel, multiplex
from scoreboard.web.live.caps import SocketCaps
from scoreboard.web.live.farewell import Farewell
from scoreboard.web.metrics import Metrics, metrics_endpoint


def create_app_from_env() -> FastAPI:
    """The factory ``scoreboard serve --workers N`` hands uvicorn: each worker process reads
    its settings from the environment (and ``.env``) and configures its own logging."""
    from scoreboard import logs

    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    return create_app(settings)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        components = bootstrap.build(settings, metrics=metrics)
        adapters = logging.getLogger("scoreboard.adapters")
        adapters.addHandler(metrics.error_log)
        try:
            async with bootstrap.running(components):
                app.state.components = components
                app.state.admin_gate = AdminGate(
                    components.store,
                    components.update_limits.storage,
                    allowed=settings.admin_allowed_ips,
                    failures=settings.admin_auth_limit,
                )
                app.state.export_limit = RequestLimit(
                    components.update_limits.storage, settings.rate_limit_export, "export"
                )
                yield
        finally:
            adapters.removeHandler(metrics.error_log)

    app = ScoreboardApp(
        title="Scoreboard",
        version=__version__,
        summary="A live leaderboard: authenticated score updates, pushed to every open page.",
        lifespan=lifespan,
        # Starlette would answer "/api/users/alice/" with a 307 to a URL built from the client's
        # Host header, and no body: an unknown path is a 404 with the JSON error body instead.
        redirect_slashes=False,
        # FastAPI's pages load their files from CDNs; /docs is served whole (web/api_docs).
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        # FastAPI's built-in OpenTelemetry hooks look up three global providers on every
        # request even when none is configured; this service exports Prometheus metrics.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.metrics = metrics
    app.state.trusted_proxies = TrustedProxies.parse(settings.trusted_proxies)
    app.state.allowed_origins = origins = AllowedOrigins.parse(settings.allowed_origins)
    app.state.farewell = Farewell()
    app.state.socket_caps = SocketCaps(settings.ws_max_connections, settings.ws_max_per_address)
    errors.install(app)
    openapi.install(app, settings)
    app.add_middleware(
        JsonCorsMiddleware,
        allow_origins=origins.as_list(),
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
        expose_headers=[
            "Retry-After",
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
            "X-Request-ID",
        ],
        max_age=600,
    )
    app.add_middleware(RequestIdMiddleware)  # outermost: every response and log line has one
    app.include_router(update.router)
    app.include_router(reads.router)
    app.include_router(boards.router)
    app.include_router(channel.router)
    app.include_router(multiplex.router)
    app.include_router(page.router)
    app.include_router(docs.router)
    app.include_router(asyncapi.router)
    app.include_router(readiness.router)
    app.include_router(admin.router)
    app.include_router(webhooks.router)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return Response(orjson.dumps({"status": "ok"}), media_type="application/json")

    return app
