"""A real server process and a real Chromium page on it. Playwright is imported inside the
fixtures so that a machine without it reaches ``chromium.require()`` (skip, or fail under CI)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser import chromium
from tests.support.server import ServerProcess
from tests.support.timing import scaled
from tests.support.tokens import token

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server").start()
    yield proc
    proc.stop()


class Api:
    """The HTTP side: post updates with valid tokens, read the top 10."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=scaled(10))
        self._tokens: dict[tuple[str, str | None], str] = {}

    def update(self, user_id: str, delta: int, name: str | None = None) -> dict[str, Any]:
        key = (user_id, name)
        if key not in self._tokens:
            self._tokens[key] = token(user_id, name=name) if name else token(user_id)
        response = self.client.post(
            "/api/scores/update",
            json={"user_id": user_id, "score_delta": delta, "auth_token": self._tokens[key]},
        )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def top10(self) -> list[dict[str, Any]]:
        response = self.client.get("/api/scores/top10")
        assert response.status_code == 200, response.text
        scores: list[dict[str, Any]] = response.json()["scores"]
        return scores


@pytest.fixture
def api(server: ServerProcess) -> Iterator[Api]:
    client = Api(server.base_url)
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
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(
        viewport={"width": 900, "height": 760}, locale="en-US", device_scale_factor=1
    )
    context.set_default_timeout(scaled(10) * 1000)
    page = context.new_page()
    result = Tab(page)
    page.on("request", lambda r: result.requests.append(r.url))
    page.on("websocket", lambda ws: result.sockets.append(ws.url))
    page.on("pageerror", lambda e: result.errors.append(str(e)))
    yield result
    context.close()
