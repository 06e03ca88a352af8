"""The application factory. ``create_app(settings)`` builds nothing until its lifespan runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI
from starlette.responses import Response

from scoreboard import __version__, bootstrap
from scoreboard.settings import Settings
from scoreboard.web import errors, live, page, reads, routes


def create_app_from_env() -> FastAPI:
    """The factory ``scoreboard serve --workers N`` hands uvicorn: each worker process reads
    its settings from the environment (and ``.env``) and configures its own logging."""
    from scoreboard import logs

    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    return create_app(settings)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        components = bootstrap.build(settings)
        async with bootstrap.running(components):
            app.state.components = components
            yield

    app = FastAPI(
        title="Scoreboard",
        version=__version__,
        summary="A live leaderboard: authenticated score updates, pushed to every open page.",
        lifespan=lifespan,
        # FastAPI's built-in OpenTelemetry hooks look up three global providers on every
        # request even when none is configured; this service exports Prometheus metrics.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(reads.router)
    app.include_router(live.router)
    app.include_router(page.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return Response(orjson.dumps({"status": "ok"}), media_type="application/json")

    return app
