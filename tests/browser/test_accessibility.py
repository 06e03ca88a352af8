"""Every page passes axe-core (WCAG 2.1 A and AA, and best practices) with no violation, in the
states a reader meets, with rows on the board, in the light and the dark scheme: one board;
several boards as tabs with the default or another one selected; the past periods listed; an
archive, on the page and embedded; the "find me" box in use, and with an id it refused."""

from __future__ import annotations

import time

import pytest

from tests.browser import axe, chromium

chromium.require()
axe.require()

from playwright.sync_api import expect  # noqa: E402

from tests.browser.board_view import rows_of, status, wait_for_rows  # noqa: E402
from tests.browser.conftest import Api, Tab  # noqa: E402
from tests.browser.test_boards import new_season, some_scores  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

pytestmark = pytest.mark.browser

SCHEMES = ["light", "dark"]


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("path", ["/", "/embed"])
def test_one_board_has_no_violations(
    server: ServerProcess, api: Api, tab: Tab, path: str, scheme: str
) -> None:
    api.update("ada", 30, name="Ada Lovelace")
    api.update("alan", 20, name="Alan Turing")
    page = tab.page
    page.emulate_media(color_scheme=scheme)
    page.goto(server.base_url + path)
    want = [["1", "Ada Lovelace", "30"], ["2", "Alan Turing", "20"]]
    wait_for_rows(page, want, 5, time.monotonic())
    expect(status(page)).to_have_attribute("data-state", "live")
    axe.assert_accessible(page)
    assert tab.errors == []


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_users_chart_has_no_violations(
    server: ServerProcess, api: Api, tab: Tab, scheme: str
) -> None:
    api.update("ada", 30, name="Ada Lovelace")
    api.update("alan", 20, name="Alan Turing")
    page = tab.page
    page.emulate_media(color_scheme=scheme)
    page.goto(server.base_url + "/")
    want = [["1", "Ada Lovelace", "30"], ["2", "Alan Turing", "20"]]
    wait_for_rows(page, want, 5, time.monotonic())
    page.get_by_role("button", name="Alan Turing").click()
    expect(page.locator("#chart-summary")).to_contain_text("Rank 2 to 2")
    page.locator("#chart details summary").click()
    axe.assert_accessible(page)
    assert tab.errors == []


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_find_me_box_in_use_has_no_violations(
    server: ServerProcess, api: Api, tab: Tab, scheme: str
) -> None:
    api.update("ada", 30, name="Ada Lovelace")
    api.update("alan", 20, name="Alan Turing")
    api.update("grace", 10, name="Grace Hopper")
    page = tab.page
    page.emulate_media(color_scheme=scheme)
    page.goto(server.base_url + "/?me=alan")
    expect(page.locator("#findme-you")).to_have_text("You are #2")
    expect(page.locator("#findme-table tr.me")).to_have_count(1)
    page.get_by_label("Your user id").focus()  # with its focus ring drawn
    axe.assert_accessible(page)

    field = page.get_by_label("Your user id")
    field.fill("not an id")
    field.press("Enter")
    expect(page.locator("#findme-error")).to_be_visible()
    axe.assert_accessible(page)
    assert tab.errors == []


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_tabs_have_no_violations(
    boards_server: ServerProcess, boards_api: Api, tab: Tab, scheme: str
) -> None:
    some_scores(boards_api)
    page = tab.page
    page.emulate_media(color_scheme=scheme)
    page.goto(boards_server.base_url + "/")
    wait_for_rows(page, rows_of(boards_api.top10("main")), 5, time.monotonic())
    expect(status(page)).to_have_attribute("data-state", "live")
    axe.assert_accessible(page)

    # Each other tab selected (a countdown, none, a season's start), with its focus ring drawn.
    for title, board in [("Today", "daily"), ("Fastest lap", "laps"), ("Season", "season")]:
        page.get_by_role("tab", name=title).click()
        page.get_by_role("tab", name=title).focus()
        wait_for_rows(page, rows_of(boards_api.top10(board)), 5, time.monotonic())
        expect(status(page)).to_have_attribute("data-state", "live")
        axe.assert_accessible(page)
    assert tab.errors == []


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_embed_of_a_board_has_no_violations(
    boards_server: ServerProcess, boards_api: Api, tab: Tab, scheme: str
) -> None:
    some_scores(boards_api)
    page = tab.page
    page.emulate_media(color_scheme=scheme)
    page.goto(boards_server.base_url + "/embed?board=laps")
    wait_for_rows(page, rows_of(boards_api.top10("laps")), 5, time.monotonic())
    expect(status(page)).to_have_attribute("data-state", "live")
    axe.assert_accessible(page)
    assert tab.errors == []


@pytest.mark.parametrize("scheme", SCHEMES)
def test_the_past_periods_and_an_archive_have_no_violations(
    boards_server: ServerProcess, boards_api: Api, tab: Tab, scheme: str
) -> None:
    some_scores(boards_api)
    new_season(boards_server, boards_api, 2)
    page = tab.page
    page.emulate_media(color_scheme=scheme)
    page.goto(boards_server.base_url + "/?board=season")
    page.locator("#archives summary").click()  # the list of past seasons, open
    expect(page.locator("#periods a")).to_have_text(["Season 1"])
    axe.assert_accessible(page)

    page.get_by_role("link", name="Season 1").click()  # the archive, with its list open
    wait_for_rows(page, rows_of(boards_api.top10("season", "1")), 5, time.monotonic())
    expect(status(page)).to_have_text("Final")
    page.locator("#archives summary").click()
    expect(page.locator("#periods a")).to_have_text(["Season 1"])
    axe.assert_accessible(page)

    page.goto(boards_server.base_url + "/embed?board=season&period=1")
    wait_for_rows(page, rows_of(boards_api.top10("season", "1")), 5, time.monotonic())
    expect(status(page)).to_have_text("Final")
    axe.assert_accessible(page)
    assert tab.errors == []
