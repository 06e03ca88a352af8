"""What a page shows of a board, read the way the browser tests compare it: the table's rows as
text, and a wait for exact rows within a deadline."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tests.support.server import ServerProcess
from tests.support.timing import scaled

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from tests.browser.conftest import Tab

_ROWS_JS = """() => Array.from(document.querySelectorAll("#board tbody tr"),
                                r => Array.from(r.cells, c => c.textContent))"""


def shown(page: Page) -> list[list[str]]:
    rows: list[list[str]] = page.evaluate(_ROWS_JS)
    return rows


def rows_of(scores: list[dict[str, Any]]) -> list[list[str]]:
    """What the page must show for a top 10 (en-US number format)."""
    return [[str(e["rank"]), e["username"], f"{e['score']:,}"] for e in scores]


def wait_for_rows(page: Page, rows: list[list[str]], within: float, since: float) -> None:
    """Wait until the table shows exactly ``rows``, at most ``scaled(within)`` after ``since``."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    remaining = since + scaled(within) - time.monotonic()
    try:
        page.wait_for_function(
            f"want => JSON.stringify(({_ROWS_JS})()) === JSON.stringify(want)",
            arg=rows,
            timeout=max(remaining, 0.001) * 1000,
        )
    except PlaywrightTimeout:
        raise AssertionError(
            f"within {scaled(within):.1f}s the page should show {rows}, it shows {shown(page)}"
            f" ({max(remaining, 0):.2f}s of it were left when the wait began)"
        ) from None


def status(page: Page) -> Locator:
    return page.locator("#status")


def only_own_origin(tab: Tab, server: ServerProcess) -> None:
    """The page asked nothing of any other host, and opened sockets only to its own."""
    outside = [u for u in tab.requests if not u.startswith(server.base_url + "/")]
    assert outside == [], f"requests outside the server: {outside}"
    own = "ws://" + server.base_url.removeprefix("http://") + "/ws"
    assert all(u == own or u.startswith(own + "/") for u in tab.sockets), tab.sockets
