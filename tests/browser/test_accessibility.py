"""Every page passes axe-core (WCAG 2.1 A and AA, and best practices) with no violation, in the
states a reader meets: a board with rows, in the light and the dark scheme."""

from __future__ import annotations

import time

import pytest

from tests.browser import axe, chromium

chromium.require()
axe.require()

from playwright.sync_api import expect  # noqa: E402

from tests.browser.board_view import status, wait_for_rows  # noqa: E402
from tests.browser.conftest import Api, Tab  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("path", ["/", "/embed"])
def test_the_live_board_has_no_violations(
    server: ServerProcess, api: Api, tab: Tab, path: str, scheme: str
) -> None:
    api.update("ada", 30, name="Ada Lovelace")
    api.update("alan", 20, name="Alan Turing")
    page = tab.page
    page.emulate_media(color_scheme=scheme)
    page.goto(server.base_url + path)
    wait_for_rows(
        page, [["1", "Ada Lovelace", "30"], ["2", "Alan Turing", "20"]], 5, time.monotonic()
    )
    expect(status(page)).to_have_attribute("data-state", "live")
    axe.assert_accessible(page)
    assert tab.errors == []
