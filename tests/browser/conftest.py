"""A real server process and a real Chromium page on it. Playwright is imported inside the
fixtures so that a machine without it reaches ``chromium.require()`` (skip, or fail under CI)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.browser import chromium
from tests.support import live_frames
from tests.support.server import ServerProcess
from tests.support.timing import scaled
from tests.support.tokens import token

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, WebSocket


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server").start()
    yield proc
    proc.stop()


def noon_zone(now: datetime) -> str:
    """An IANA zone where it is about noon at ``now``: a daily board there ends 11 to 12 hours
    later, so no test sees it roll over by itself."""
    shift = 12 - now.astimezone(UTC).hour  # -11..12 hours east of UTC
    return "UTC" if shift == 0 else f"Etc/GMT{-shift:+d}"  # Etc/GMT-3 is UTC+3


def boards_toml(zone: str) -> str:
    """Four boards, in tab order: main (the default: all-time sum of points), a daily board, a
    best-and-lowest board of another metric (lap times), and a manual board (seasons)."""
    return f"""
[metrics.laps]
min_delta = 1
max_delta = 1000000

[boards.main]
title = "All time"

[boards.daily]
title = "Today"
reset = "daily"
timezone = "{zone}"

[boards.laps]
title = "Fastest lap"
metric = "laps"
aggregate = "best"
order = "asc"

[boards.season]
title = "Season"
reset = "manual"
"""


@pytest.fixture
def boards_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with the boards of :func:`boards_toml`."""
    config = tmp_path / "boards.toml"
    config.write_text(boards_toml(noon_zone(datetime.now(UTC))), encoding="utf-8")
    proc = ServerProcess(tmp_path / "server", env={"SCOREBOARD_BOARDS": str(config)}).start()
    yield proc
    proc.stop()


class Api:
    """The HTTP side: post updates with valid tokens, read a board."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=scaled(10))
        self._tokens: dict[tuple[str, str | None], str] = {}

    def update(
        self, user_id: str, delta: int, name: str | None = None, metric: str | None = None
    ) -> dict[str, Any]:
        """One event of ``metric`` (points when ``None``), on every board of that metric."""
        key = (user_id, name)
        if key not in self._tokens:
            self._tokens[key] = token(user_id, name=name) if name else token(user_id)
        body: dict[str, Any] = {
            "user_id": user_id,
            "score_delta": delta,
            "auth_token": self._tokens[key],
        }
        if metric is not None:
            body["metric"] = metric
        response = self.client.post("/api/scores/update", json=body)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def top10(self, board: str | None = None, period: str | None = None) -> list[dict[str, Any]]:
        """The default board's top 10 (the seed's endpoint), or ``board``'s in ``period``."""
        if board is None:
            scores: list[dict[str, Any]] = self.get("/api/scores/top10")["scores"]
        elif period is None:
            scores = self.get(f"/api/boards/{board}/top10")["scores"]
        else:
            scores = self.get(f"/api/boards/{board}/top10", period=period)["scores"]
        return scores

    def board(self, board: str) -> dict[str, Any]:
        """``/api/boards/{board}``: the board and its current period."""
        found: dict[str, Any] = self.get(f"/api/boards/{board}")
        return found


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
    client = Api(server.base_url)
    yield client
    client.client.close()


@pytest.fixture
def boards_api(boards_server: ServerProcess) -> Iterator[Api]:
    client = Api(boards_server.base_url)
    yield client
    client.client.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module, not per session: Playwright's sync API keeps an asyncio
    loop marked as running in the main thread while it is started, and pytest-asyncio's tests
    (in any later module) then fail with "Cannot run the event loop while another loop is
    running"."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(chromium.EXECUTABLE), headless=True, args=chromium.ARGS
        )
        yield instance
        instance.close()


@dataclass
class Tab:
    """A page plus what it did: every HTTP request it made and every uncaught script error."""

    page: Page
    requests: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    drifted: list[str] = field(default_factory=list)
    """Frames the page received that /asyncapi.json does not allow (tests/support/live_frames.py),
    asserted empty when the test ends."""

    def open_sockets(self) -> list[str]:
        """The URLs of the page's WebSockets that are open (or opening) now."""
        still = list(self.sockets)
        for url in self.closed:
            still.remove(url)
        return still


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(
        viewport={"width": 900, "height": 760}, locale="en-US", device_scale_factor=1
    )
    context.set_default_timeout(scaled(10) * 1000)
    page = context.new_page()
    result = Tab(page)
    page.on("request", lambda r: result.requests.append(r.url))
    page.on("websocket", lambda ws: _follow(result, ws))
    page.on("pageerror", lambda e: result.errors.append(str(e)))
    yield result
    context.close()
    assert not result.drifted, "\n".join(result.drifted)


def _follow(tab: Tab, socket: WebSocket) -> None:
    tab.sockets.append(socket.url)
    socket.on("close", lambda ws: tab.closed.append(ws.url))
    socket.on("framereceived", lambda payload: _check(tab, socket.url, payload))


def _check(tab: Tab, url: str, payload: str | bytes) -> None:
    """A frame the page received, held to the AsyncAPI document. Playwright calls this from its
    event dispatch, where an exception would not reach the test: it is kept for the teardown."""
    try:
        live_frames.check(urlsplit(url).path, payload)
    except AssertionError as drift:
        tab.drifted.append(str(drift))
