"""``GET /readyz``: whether this process should get traffic (``/healthz`` only says it is alive).

Ready means: the store answers a read, the rank index is built (and, in Redis, reachable and
whole), and the rate limiter's storage answers. Each check has a short deadline, so a probe never
hangs on a dead backend. 200 ``{"status": "ready", "checks": {...}}`` or 503 with
``"status": "not_ready"`` and each failed check named; a failed check is also counted in
``scoreboard_backend_errors_total``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from scoreboard.bootstrap import Components
from scoreboard.web.metrics import Metrics

router = APIRouter(include_in_schema=False)

_DEADLINE = 2.0


async def _passes(check: Callable[[], Awaitable[bool]]) -> bool:
    try:
        async with asyncio.timeout(_DEADLINE):
            return await check()
    except Exception:
        return False


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    parts: Components | None = getattr(request.app.state, "components", None)
    if parts is None:
        return _answer({"app": False})
    metrics: Metrics = request.app.state.metrics
    limits = parts.update_limits

    async def database() -> bool:
        await parts.store.config_version()
        return True

    async def index() -> bool:
        if not parts.service.started:
            return False
        for served in parts.service.boards.values():
            await served.index.size()
        # A shared index can be flushed underneath us.
        return all([await shared.check() for shared in parts.shared_indexes.values()])

    checks = {"database": await _passes(database), "index": await _passes(index)}
    if parts.settings.redis_url is not None:
        checks["redis"] = await _passes(limits.ready)
    for name, backend in (("database", "database"), ("redis", "redis")):
        if checks.get(name) is False:
            metrics.backend_errors.labels(backend).inc()
    return _answer(checks)


def _answer(checks: dict[str, bool]) -> Response:
    ready = all(checks.values())
    body = {
        "status": "ready" if ready else "not_ready",
        "checks": {name: "ok" if ok else "failed" for name, ok in checks.items()},
    }
    return Response(
        orjson.dumps(body), status_code=200 if ready else 503, media_type="application/json"
    )
