"""How ``scoreboard serve`` (and ``bench/``) run uvicorn: one set of options, one version check.

The protocol subclasses in this package reach into uvicorn's private attributes, so they are
used only with the uvicorn versions they were tested against (:data:`SUPPORTED`, the same bound
as in ``pyproject.toml``). On any other version ``serve`` refuses to start, with one line naming
the range, unless ``SCOREBOARD_ALLOW_UNTESTED_SERVER=1``: then it starts on uvicorn's stock
protocols and logs, once, which protections are off.

uvicorn's own proxy-header handling is always off: it believes ``X-Forwarded-For`` from any
loopback peer and rewrites the client address before the app sees it. The app alone decides,
from the socket's real peer and ``SCOREBOARD_TRUSTED_PROXIES`` (``web.client_address``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from typing import Any

from packaging.version import Version

from scoreboard.server.limits import EdgeLimits
from scoreboard.settings import Settings

log = logging.getLogger(__name__)

SUPPORTED = (Version("0.54.0"), Version("0.55"))
"""uvicorn versions ``[low, high)`` whose internals ``server.http`` and ``server.websocket`` rely
on (``pyproject.toml`` bounds the dependency the same way)."""

KEEP_ALIVE = 5.0
"""Seconds an idle keep-alive connection is kept (uvicorn's default, stated here)."""

OFF_WITHOUT_OUR_PROTOCOLS = (
    "request header and body deadlines (slowloris) and the header size cap",
    "closing connections whose request body arrives after the answer",
    "the budget on every WebSocket client frame (pings and fragments are not counted)",
    "the bound on pongs owed to a client that does not read",
    "JSON bodies on malformed-request and handshake refusals",
    "prebuilt board frames (each board is framed again per socket)",
)


class UnsupportedServer(Exception):
    """The installed uvicorn is outside :data:`SUPPORTED`; the message is one line."""


def installed_uvicorn() -> str:
    import uvicorn

    return str(uvicorn.__version__)


def check_version(version: str, *, allow_untested: bool) -> bool:
    """Whether our protocols may be used with uvicorn ``version``. Outside the range: raises
    :class:`UnsupportedServer`, or, when ``allow_untested``, returns ``False`` (stock protocols)."""
    low, high = SUPPORTED
    if low <= Version(version) < high:
        return True
    if not allow_untested:
        raise UnsupportedServer(
            f"uvicorn {version} is not supported: scoreboard's server layer was tested with "
            f"uvicorn >={low},<{high} (install that, or set SCOREBOARD_ALLOW_UNTESTED_SERVER=1 "
            "to start on uvicorn's stock protocols without the protections that need them)"
        )
    return False


def uvicorn_options(settings: Settings, *, guarded: bool = True) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` for the service (and the
    benchmarks' bare app, so both stacks match): our protocols when ``guarded``."""
    limits = EdgeLimits.from_settings(settings, keep_alive=KEEP_ALIVE)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "ws": "websockets-sansio",
        "ws_max_size": settings.ws_max_message,
        "ws_ping_interval": settings.ws_ping_interval,
        "ws_ping_timeout": settings.ws_ping_interval,
        "ws_per_message_deflate": False,
        "proxy_headers": False,
        "timeout_keep_alive": KEEP_ALIVE,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    if guarded:
        from scoreboard.server.http import GuardedHttpProtocol
        from scoreboard.server.websocket import FramedWebSocketProtocol

        # Bound with partial, not class attributes: uvicorn's workers are spawned processes
        # that receive the configuration pickled, and a partial of a class and a frozen
        # dataclass pickles by value.
        options["http"] = functools.partial(GuardedHttpProtocol, limits=limits)
        options["ws"] = functools.partial(FramedWebSocketProtocol, limits=limits)
    return options


def with_process_policies(app: Any) -> Any:
    """``app`` (the service's Starlette app) whose lifespan also runs what belongs to a server
    process: the collector policy (``server.collector``) and, on SIGTERM, the live sockets'
    goodbye with 1001 before uvicorn's shutdown (``server.signals``). No cost per request."""
    from scoreboard.server.collector import keep_survivors_frozen
    from scoreboard.server.signals import goodbye_on_sigterm

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with inner(application) as state, goodbye_on_sigterm(app.state.farewell):
            collector = asyncio.create_task(keep_survivors_frozen())
            try:
                yield state
            finally:
                collector.cancel()

    app.router.lifespan_context = lifespan
    return app


def app_from_env() -> Any:
    """The factory each worker of ``serve --workers N`` imports: the app from the environment,
    with the process policies."""
    from scoreboard.web.app import create_app_from_env

    return with_process_policies(create_app_from_env())


def serve(settings: Settings, *, workers: int = 1) -> None:
    """Run the service under uvicorn until it is stopped. ``UnsupportedServer`` (one line) for
    an uvicorn outside :data:`SUPPORTED` unless ``settings.allow_untested_server``."""
    import uvicorn

    guarded = check_version(installed_uvicorn(), allow_untested=settings.allow_untested_server)
    if not guarded:
        # The list is ours, so it goes in the template (arguments are bounded in the logs).
        log.warning(
            "uvicorn %s is untested: serving on its stock protocols; protections off: "
            + "; ".join(OFF_WITHOUT_OUR_PROTOCOLS),
            installed_uvicorn(),
        )
    options = uvicorn_options(settings, guarded=guarded)
    if workers > 1:
        # Several processes import the factory, each building its own Settings from the same
        # environment (the command line only chooses host and port).
        uvicorn.run("scoreboard.server.run:app_from_env", factory=True, workers=workers, **options)
        return
    from scoreboard.web.app import create_app

    uvicorn.run(with_process_policies(create_app(settings)), **options)
