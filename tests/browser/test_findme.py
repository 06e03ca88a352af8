"""The "find me" box of `/` (findme.js) in a real Chromium against a real server: a user's
window of the board, live, their rank announced politely when it changes and only then, the
keyboard, the address (``?me=``), a user not ranked yet, a refused id, phone width, and the
board shown followed across tabs."""

from __future__ import annotations

import re
import time

import pytest

from tests.browser import chromium

chromium.require()

from playwright.sync_api import Page, WebSocket, expect  # noqa: E402

from tests.browser.board_view import rows_of, wait_for_rows  # noqa: E402
from tests.browser.conftest import Api, Tab  # noqa: E402
from tests.browser.test_client import pump_until, window_rows  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402
from tests.support.timing import scaled  # noqa: E402

pytestmark = pytest.mark.browser


def ten_players(api: Api) -> None:
    """p01..p10 with 10, 20, ... 100 points: p10 first, p01 tenth."""
    for i in range(1, 11):
        api.update(f"p{i:02d}", 10 * i, name=f"Player {i}")


def find(page: Page, user_id: str) -> None:
    """Type the id and press Enter, as a reader would."""
    field = page.get_by_label("Your user id")
    field.fill(user_id)
    field.press("Enter")


def test_the_box_shows_the_users_window_live_and_announces_rank_changes_only(
    server: ServerProcess, api: Api, tab: Tab
) -> None:
    ten_players(api)
    page = tab.page
    page.goto(server.base_url + "/")
    wait_for_rows(page, rows_of(api.top10()), 5, time.monotonic())
    box = page.locator("#findme")
    expect(box).to_be_visible()
    expect(page.locator("#findme-table")).to_be_hidden()

    find(page, "p05")  # sixth: three above, three below
    you = page.locator("#findme-you")
    expect(you).to_have_text("You are #6")
    expect(page.locator("#findme-table tbody tr")).to_have_count(7)
    assert window_rows(page) == [
        [str(rank), f"Player {11 - rank}", str(10 * (11 - rank))] for rank in range(3, 10)
    ]
    mine = page.locator("#findme-table tr.me")
    expect(mine).to_have_attribute("aria-current", "true")
    expect(mine.locator("th")).to_have_text("Player 5")
    live = page.locator("#findme-live")
    expect(live).to_have_attribute("aria-live", "polite")
    expect(live).to_have_text("You are #6 on All time")
    assert re.search(r"[?&]me=p05\b", page.url)  # kept in the address

    # Player 3 passes Player 5 from below: rank 7, said once.
    api.update("p03", 25)  # 55: above p05's 50
    expect(you).to_have_text("You are #7", timeout=scaled(5) * 1000)
    expect(live).to_have_text("You are now #7, down from #6", timeout=scaled(5) * 1000)
    expect(page.locator("#findme-table tr.me td.rank")).to_have_text("7")
    said = page.evaluate("window.scoreboard.findme.announcements")
    assert said == 2

    # A score that changes without a change of rank is drawn, not announced.
    api.update("p05", 1)  # 51: still seventh
    expect(page.locator("#findme-table tr.me td.score")).to_have_text("51")
    states = page.evaluate("window.scoreboard.findme.states")
    api.update("p05", 10)  # 61: past Player 6 (60) and Player 3 (55): fifth
    expect(you).to_have_text("You are #5", timeout=scaled(5) * 1000)
    expect(live).to_have_text("You are now #5, up from #7", timeout=scaled(5) * 1000)
    assert page.evaluate("window.scoreboard.findme.states") > states
    assert page.evaluate("window.scoreboard.findme.announcements") == said + 1
    assert tab.errors == []


def test_the_address_keeps_the_user_and_stop_forgets_them(
    server: ServerProcess, api: Api, tab: Tab
) -> None:
    ten_players(api)
    page = tab.page
    page.goto(server.base_url + "/?me=p10")
    you = page.locator("#findme-you")
    expect(you).to_have_text("You are #1")
    expect(page.get_by_label("Your user id")).to_have_value("p10")
    assert window_rows(page)[0] == ["1", "Player 10", "100"]
    assert len(window_rows(page)) == 4  # nobody above the first: three below

    sockets: list[WebSocket] = []  # those of the page after the reload
    page.on("websocket", lambda ws: sockets.append(ws))
    page.reload()  # the address still names the user
    expect(you).to_have_text("You are #1")

    # The keyboard alone: from the field, Tab reaches Find, then Stop.
    field = page.get_by_label("Your user id")
    field.focus()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Find")).to_be_focused()
    page.keyboard.press("Tab")
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_focused()
    page.keyboard.press("Enter")
    expect(field).to_be_focused()  # the button went away: the focus goes back to the field
    expect(field).to_have_value("")
    expect(you).to_be_hidden()
    expect(page.locator("#findme-table")).to_be_hidden()
    expect(stop).to_be_hidden()
    assert "me=" not in page.url
    # The box's socket is closed with its last subscription; the board's stays.
    page.wait_for_function("() => window.scoreboard.findme.view === null")
    views = [ws for ws in sockets if ws.url.endswith("/ws")]
    pump_until(page, lambda: all(ws.is_closed() for ws in views), 5, "the /ws socket closed")
    assert len(views) == 1
    assert [ws.is_closed() for ws in sockets if ws.url.endswith("/ws/boards/main")] == [False]
    expect(page.locator("#findme-live")).to_have_text("")
    assert tab.errors == []


def test_a_user_without_a_score_fills_in_when_they_get_one(
    server: ServerProcess, api: Api, tab: Tab
) -> None:
    api.update("ada", 30, name="Ada")
    page = tab.page
    page.goto(server.base_url + "/")
    wait_for_rows(page, [["1", "Ada", "30"]], 5, time.monotonic())
    find(page, "grace")
    you = page.locator("#findme-you")
    expect(you).to_have_text("grace has no score on All time yet.")
    expect(page.locator("#findme-table")).to_be_hidden()
    expect(page.locator("#findme-live")).to_have_text("grace has no score on All time yet")

    api.update("grace", 40, name="Grace")
    expect(you).to_have_text("You are #1", timeout=scaled(5) * 1000)
    assert window_rows(page) == [["1", "Grace", "40"], ["2", "Ada", "30"]]
    expect(page.locator("#findme-live")).to_have_text(
        "You are #1 on All time", timeout=scaled(5) * 1000
    )
    assert tab.errors == []


def test_an_id_the_server_would_refuse_is_refused_with_nothing_sent(
    server: ServerProcess, api: Api, tab: Tab
) -> None:
    api.update("ada", 30, name="Ada")
    page = tab.page
    page.goto(server.base_url + "/")
    wait_for_rows(page, [["1", "Ada", "30"]], 5, time.monotonic())
    field = page.get_by_label("Your user id")
    find(page, "no spaces, please")
    error = page.locator("#findme-error")
    expect(error).to_have_text("A user id is 1 to 64 letters, digits or _ - . : @")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_attribute("aria-describedby", "findme-error")
    expect(field).to_be_focused()
    assert not [u for u in tab.sockets if u.endswith("/ws")]  # nothing was asked of /ws
    assert "me=" not in page.url

    find(page, "ada")  # a good one clears the error
    expect(page.locator("#findme-you")).to_have_text("You are #1")
    expect(error).to_be_hidden()
    assert field.get_attribute("aria-invalid") is None
    assert tab.errors == []


def test_a_phone_width_screen_shows_the_box_without_sideways_scrolling(
    server: ServerProcess, api: Api, tab: Tab
) -> None:
    long_name = "Maximilian Alexander von Habsburg-Lothringen the Third"
    api.update("max", 1000, name=long_name)
    api.update("max", 234, name=long_name)
    api.update("ada", 99, name="Ada")
    page = tab.page
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(server.base_url + "/?me=ada")
    expect(page.locator("#findme-you")).to_have_text("You are #2")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    for selector in ("#findme-user", "#findme button[type=submit]", "#findme .stop"):
        box = page.locator(selector).bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 360, selector
        assert box["height"] >= 40, selector  # big enough for a finger (2.5rem)
    name = page.locator('#findme-table tr[data-user="max"] th')
    assert name.evaluate("c => c.scrollWidth > c.clientWidth")  # cut with an ellipsis
    expect(name).to_have_attribute("title", long_name)


def test_the_box_follows_the_board_shown(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    boards_api.update("ada", 30, name="Ada")
    boards_api.update("alan", 20, name="Alan")
    boards_api.update("ada", 81_500, name="Ada", metric="laps")
    page = tab.page
    page.goto(boards_server.base_url + "/?me=alan")
    you = page.locator("#findme-you")
    expect(you).to_have_text("You are #2")
    page.get_by_role("tab", name="Today").click()
    expect(page.locator("#findme-live")).to_have_text("You are #2 on Today")
    page.get_by_role("tab", name="Fastest lap").click()
    expect(you).to_have_text("alan has no score on Fastest lap yet.")
    assert "me=alan" in page.url
    assert "board=laps" in page.url
    wait_for_rows(page, rows_of(boards_api.top10("laps")), 5, time.monotonic())
    # Each board's view was subscribed before the last one closed: one /ws socket throughout.
    assert len([u for u in tab.sockets if u.endswith("/ws")]) == 1
    assert tab.errors == []
