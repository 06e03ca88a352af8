"""The page with several boards, in a real Chromium against a real server process: every board
a tab, a live update on a board that is not the default, the embed of one board, the countdown
to a period's end, a new period seen live, and past periods: listed with their winners, paged,
and opened as archives."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.browser import chromium

chromium.require()

from playwright.sync_api import Page, expect  # noqa: E402

from tests.browser.board_view import (  # noqa: E402
    only_own_origin,
    rows_of,
    status,
    wait_for_rows,
)
from tests.browser.conftest import Api, Tab  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402
from tests.support.timing import scaled, wait_until  # noqa: E402

pytestmark = pytest.mark.browser

TITLES = ["All time", "Today", "Fastest lap", "Season"]  # the default board first, then by id


def some_scores(api: Api) -> None:
    """Points for Ada, Alan and Grace (on main, daily and season), and lap times for Ada and
    Grace (on laps: the best time, lowest first)."""
    api.update("ada", 30, name="Ada")
    api.update("alan", 20, name="Alan")
    api.update("grace", 10, name="Grace")
    api.update("ada", 83_000, name="Ada", metric="laps")
    api.update("ada", 81_500, name="Ada", metric="laps")
    api.update("grace", 82_250, name="Grace", metric="laps")


def tabs(page: Page) -> list[dict[str, str | None]]:
    found: list[dict[str, str | None]] = page.locator("[role=tab]").evaluate_all(
        """tabs => tabs.map(t => ({
               text: t.textContent, selected: t.getAttribute("aria-selected"),
               tabindex: t.getAttribute("tabindex"), controls: t.getAttribute("aria-controls"),
           }))"""
    )
    return found


def selected_tab(page: Page) -> str:
    selected = [t["text"] for t in tabs(page) if t["selected"] == "true"]
    assert len(selected) == 1, tabs(page)
    return str(selected[0])


def expect_selected(page: Page, title: str) -> None:
    """``title``'s tab is the one selected and in the tab order; the panel is labelled by it."""
    tab = page.get_by_role("tab", name=title, exact=True)
    expect(tab).to_have_attribute("aria-selected", "true")
    expect(tab).to_have_attribute("tabindex", "0")
    assert [t["tabindex"] for t in tabs(page)].count("0") == 1, tabs(page)  # roving tabindex
    panel = page.get_by_role("tabpanel")
    expect(panel).to_have_attribute("aria-labelledby", str(tab.get_attribute("id")))
    expect(panel).to_have_accessible_name(title)
    expect(page.locator("#board-title")).to_have_text(title)


def test_every_board_is_a_tab_and_the_address_names_the_selected_one(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    some_scores(boards_api)
    page = tab.page
    page.goto(boards_server.base_url + "/")
    expect(page.get_by_role("tablist", name="Boards")).to_be_visible()
    expect(page.get_by_role("tab")).to_have_text(TITLES)
    expect_selected(page, "All time")
    assert all(t["controls"] == "view" for t in tabs(page))
    wait_for_rows(page, rows_of(boards_api.top10("main")), 5, time.monotonic())
    expect(status(page)).to_have_attribute("data-state", "live")

    expect(page.locator("#embed-code")).to_have_text('<iframe src="/embed"></iframe>')

    page.get_by_role("tab", name="Fastest lap").click()
    expect_selected(page, "Fastest lap")
    expect(page).to_have_url(boards_server.base_url + "/?board=laps")
    expect(page.locator("#embed-code")).to_have_text('<iframe src="/embed?board=laps"></iframe>')
    want = [["1", "Ada", "81,500"], ["2", "Grace", "82,250"]]  # the best time, lowest first
    assert rows_of(boards_api.top10("laps")) == want
    wait_for_rows(page, want, 5, time.monotonic())
    expect(page).to_have_title("Fastest lap · Scoreboard")

    # Only the visible board has a socket: the first one was closed when the tab changed.
    laps_socket = boards_server.base_url.replace("http", "ws", 1) + "/ws/boards/laps"
    wait_until(lambda: tab.open_sockets() == [laps_socket], 5, "only the laps socket open")

    page.reload()  # a link or a reload opens the tab the address names
    expect_selected(page, "Fastest lap")
    wait_for_rows(page, want, 5, time.monotonic())

    page.goto(boards_server.base_url + "/?board=no-such-board")  # the default board instead
    expect_selected(page, "All time")
    expect(page).to_have_url(boards_server.base_url + "/")
    only_own_origin(tab, boards_server)
    assert tab.errors == []


def test_the_tabs_work_from_the_keyboard(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    some_scores(boards_api)
    page = tab.page
    page.goto(boards_server.base_url + "/?board=daily")
    expect_selected(page, "Today")
    wait_for_rows(page, rows_of(boards_api.top10("daily")), 5, time.monotonic())
    expect(status(page)).to_have_text("Live")
    page.evaluate(  # what the status region says from now on
        """() => { window.said = [];
                   new MutationObserver(() => window.said.push(
                       document.querySelector("#status").textContent.trim()))
                     .observe(document.querySelector("#status"),
                              {subtree: true, childList: true, characterData: true}); }"""
    )

    page.keyboard.press("Tab")  # the first stop in the page: the selected tab, not the first
    expect(page.get_by_role("tab", name="Today")).to_be_focused()
    for key, title in [
        ("ArrowRight", "Fastest lap"),
        ("ArrowRight", "Season"),
        ("ArrowRight", "All time"),  # wraps around
        ("ArrowLeft", "Season"),  # and back
        ("Home", "All time"),
        ("End", "Season"),
        ("ArrowLeft", "Fastest lap"),
    ]:
        page.keyboard.press(key)
        tab_of = page.get_by_role("tab", name=title, exact=True)
        expect(tab_of).to_be_focused()
        expect_selected(page, title)  # selection follows focus
    wait_for_rows(page, rows_of(boards_api.top10("laps")), 5, time.monotonic())
    expect(page).to_have_url(boards_server.base_url + "/?board=laps")
    # Seven boards looked at, and the status region never said "Connecting…": still live.
    assert page.evaluate("window.said") == []
    expect(status(page)).to_have_text("Live")

    page.keyboard.press("Tab")  # out of the tab list, to the panel
    expect(page.get_by_role("tabpanel")).to_be_focused()
    page.keyboard.press("Shift+Tab")  # back to the selected tab
    expect(page.get_by_role("tab", name="Fastest lap")).to_be_focused()
    assert tab.errors == []


def test_a_board_that_is_not_the_default_updates_live(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    some_scores(boards_api)
    page = tab.page
    page.goto(boards_server.base_url + "/")
    wait_for_rows(page, rows_of(boards_api.top10("main")), 5, time.monotonic())
    page.evaluate("window.sameDocument = true")
    page.get_by_role("tab", name="Fastest lap").click()
    wait_for_rows(page, [["1", "Ada", "81,500"], ["2", "Grace", "82,250"]], 5, time.monotonic())
    expect(status(page)).to_have_attribute("data-state", "live")

    since = time.monotonic()
    boards_api.update("alan", 80_900, name="Alan", metric="laps")  # a new best lap
    want = [["1", "Alan", "80,900"], ["2", "Ada", "81,500"], ["3", "Grace", "82,250"]]
    wait_for_rows(page, want, 1.0, since)
    expect(page.locator("#announcer")).to_have_text("Alan: 80,900, rank 1")  # not "points"

    # Points move the other boards, not this one; a slower lap is not Grace's best.
    boards_api.update("grace", 500, name="Grace")
    boards_api.update("grace", 90_000, name="Grace", metric="laps")
    boards_api.update("ada", 80_000, name="Ada", metric="laps")
    want = [["1", "Ada", "80,000"], ["2", "Alan", "80,900"], ["3", "Grace", "82,250"]]
    assert rows_of(boards_api.top10("laps")) == want
    wait_for_rows(page, want, 1.0, time.monotonic())

    page.get_by_role("tab", name="Season").click()  # the other board, as it is now
    wait_for_rows(page, rows_of(boards_api.top10("season")), 5, time.monotonic())
    assert page.evaluate("window.sameDocument") is True  # no reload
    assert tab.errors == []


def test_embed_shows_the_board_it_names(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    some_scores(boards_api)
    page = tab.page
    page.goto(boards_server.base_url + "/embed?board=laps")
    expect(page.locator("main h1")).to_have_text("Fastest lap")
    wait_for_rows(page, [["1", "Ada", "81,500"], ["2", "Grace", "82,250"]], 5, time.monotonic())
    assert page.locator("[role=tab], header, footer").count() == 0
    since = time.monotonic()
    boards_api.update("alan", 80_900, name="Alan", metric="laps")
    wait_for_rows(
        page, [["1", "Alan", "80,900"], ["2", "Ada", "81,500"], ["3", "Grace", "82,250"]], 1, since
    )

    page.goto(boards_server.base_url + "/embed")  # the default board without a name
    expect(page.locator("main h1")).to_have_text("All time")
    wait_for_rows(page, rows_of(boards_api.top10("main")), 5, time.monotonic())

    # A board that is not there is said so, rather than another board shown in its place.
    page.goto(boards_server.base_url + "/embed?board=nope")
    expect(page.locator("#notice")).to_have_text("There is no board “nope” on this server.")
    expect(status(page)).to_have_text("Not found")
    expect(page.locator("#board")).to_be_hidden()
    only_own_origin(tab, boards_server)
    assert tab.errors == []


def seconds_left(text: str) -> int:
    """The seconds in a countdown's text: "Ends in 11h 02m 05s" is 39725."""
    match = re.fullmatch(r"Ends in (?:(\d+)d )?(?:(\d+)h )?(?:(\d+)m )?(\d+)s", text)
    assert match is not None, f"not a countdown: {text!r}"
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def time_left(board: dict[str, object]) -> float:
    """Seconds until ``board``'s current period ends, by this machine's clock."""
    period = board["period"]
    assert isinstance(period, dict)
    ends = datetime.fromisoformat(str(period["ends_at"]))
    return (ends - datetime.now(UTC)).total_seconds()


def test_the_countdown_counts_to_the_end_of_the_period_every_second(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    daily = boards_api.board("daily")
    page = tab.page
    page.goto(boards_server.base_url + "/?board=daily")
    day = date.fromisoformat(daily["period"]["id"])
    expect(page.locator("#period-label")).to_have_text(f"{day:%a, %b} {day.day}, {day.year}")
    timer = page.get_by_role("timer")
    expect(timer).to_have_text(re.compile(r"^Ends in \d+h \d\dm \d\ds$"))
    shown_then = str(timer.text_content())
    assert abs(seconds_left(shown_then) - time_left(daily)) <= 2, (shown_then, daily)
    expect(timer).not_to_have_text(shown_then, timeout=scaled(3) * 1000)  # a second later
    # A timer, not a live region: read when asked for, not announced every second.
    assert timer.evaluate("t => t.closest('[aria-live]:not([aria-live=off])') === null")

    page.get_by_role("tab", name="Season").click()  # a season has a start, not an end
    expect(page.locator("#period-label")).to_have_text("Season 1")
    expect(timer).to_have_text(re.compile(r"^Started "))
    page.get_by_role("tab", name="All time").click()  # one period, all of time: no line at all
    expect(page.locator("#period")).to_be_hidden()
    assert tab.errors == []


def test_the_countdown_keeps_to_the_server_clock_when_the_readers_is_off(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    page = tab.page
    page.clock.install(time=datetime.now(UTC) + timedelta(hours=1))  # an hour fast, and running
    page.goto(boards_server.base_url + "/?board=daily")
    timer = page.get_by_role("timer")
    expect(timer).to_have_text(re.compile(r"^Ends in "))
    shown_then = str(timer.text_content())
    daily = boards_api.board("daily")
    assert abs(seconds_left(shown_then) - time_left(daily)) <= 3, (shown_then, daily)
    assert tab.errors == []


def test_a_new_season_is_seen_live_without_reload(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    some_scores(boards_api)
    page = tab.page
    page.goto(boards_server.base_url + "/?board=season")
    wait_for_rows(page, rows_of(boards_api.top10("season")), 5, time.monotonic())
    expect(page.locator("#period-label")).to_have_text("Season 1")
    page.evaluate("window.sameDocument = true")

    boards_server.run("boards", "rollover", "season")  # the operator, next to the server
    # From the command's return: its own start-up (seconds on a busy machine) is not the page's.
    since = time.monotonic()
    expect(page.locator("#period-label")).to_have_text("Season 2", timeout=scaled(5) * 1000)
    wait_for_rows(page, [], 5, since)  # a new season starts empty
    expect(page.locator("#empty")).to_be_visible()
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"^Started "))
    expect(page.locator("#announcer")).to_have_text("Season: Season 2 has started")
    expect(status(page)).to_have_attribute("data-state", "live")
    assert page.evaluate("window.scoreboard.period") == "2"

    since = time.monotonic()
    boards_api.update("grace", 5, name="Grace")  # the first points of season 2
    wait_for_rows(page, [["1", "Grace", "5"]], 1.0, since)
    page.get_by_role("tab", name="All time").click()  # all time keeps counting from the start
    wait_for_rows(page, [["1", "Ada", "30"], ["2", "Alan", "20"], ["3", "Grace", "15"]], 5, since)
    assert page.evaluate("window.sameDocument") is True
    assert tab.errors == []


def test_a_season_started_while_the_page_was_cut_off_is_found_on_reconnecting(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    some_scores(boards_api)
    page = tab.page
    page.goto(boards_server.base_url + "/?board=season")
    wait_for_rows(page, rows_of(boards_api.top10("season")), 5, time.monotonic())
    expect(page.locator("#period-label")).to_have_text("Season 1")

    boards_server.stop()
    expect(status(page)).to_have_attribute("data-state", "reconnecting")
    boards_server.run("boards", "rollover", "season")  # no server to tell the page
    boards_server.start()
    expect(status(page)).to_have_attribute("data-state", "live", timeout=scaled(20) * 1000)
    expect(page.locator("#period-label")).to_have_text("Season 2")  # from the SNAPSHOT
    wait_for_rows(page, [], 5, time.monotonic())
    expect(page.get_by_role("timer")).to_have_text(re.compile(r"^Started "))
    assert tab.errors == []


def new_season(server: ServerProcess, api: Api, season: int) -> None:
    """Roll the manual board over to ``season`` and wait until the server serves it."""
    server.run("boards", "rollover", "season")
    wait_until(
        lambda: api.board("season")["period"]["id"] == str(season), 5, f"season {season} started"
    )


def test_a_past_season_is_listed_with_its_winner_and_opens_as_an_archive(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    some_scores(boards_api)  # season 1: Ada 30, Alan 20, Grace 10
    page = tab.page
    page.goto(boards_server.base_url + "/?board=season")
    wait_for_rows(page, rows_of(boards_api.top10("season")), 5, time.monotonic())
    page.locator("#archives summary").click()
    expect(page.locator("#archives summary")).to_have_text("Past seasons")
    expect(page.locator("#periods-note")).to_have_text("None yet.")

    boards_server.run("boards", "rollover", "season")  # the open list takes it in, live
    expect(page.locator("#periods a")).to_have_text(["Season 1"], timeout=scaled(5) * 1000)
    expect(page.locator("#periods .leader")).to_have_text(["Winner: Ada, 30 points"])
    expect(page.locator("#periods .entries")).to_have_text(["3 players"])
    expect(page.locator("#periods-note")).to_be_hidden()
    boards_api.update("grace", 7, name="Grace")  # season 2
    new_season(boards_server, boards_api, 3)
    expect(page.locator("#periods a")).to_have_text(["Season 2", "Season 1"])
    expect(page.locator("#periods .leader")).to_have_text(
        ["Winner: Grace, 7 points", "Winner: Ada, 30 points"]
    )

    sockets = len(tab.sockets)
    page.get_by_role("link", name="Season 1").click()
    expect(page).to_have_url(boards_server.base_url + "/?board=season&period=1")
    want = [["1", "Ada", "30"], ["2", "Alan", "20"], ["3", "Grace", "10"]]
    assert rows_of(boards_api.top10("season", period="1")) == want
    wait_for_rows(page, want, 5, time.monotonic())
    expect(page.locator("#winner")).to_have_text("Winner: Ada, 30 points")
    expect(page.locator("#board-title")).to_have_text("Season")
    expect(page.locator("#period-label")).to_have_text("Season 1")
    expect(status(page)).to_have_text("Final")
    expect(page.get_by_role("timer")).to_be_hidden()  # it is over
    expect(page.locator("#tabs")).to_be_hidden()
    expect(page).to_have_title("Season, Season 1 · Scoreboard")
    embed = '<iframe src="/embed?board=season&period=1"></iframe>'
    expect(page.locator("#embed-code")).to_have_text(embed)
    page.locator("#archives summary").click()  # the other seasons, this one marked
    expect(page.locator("#periods a[aria-current=page]")).to_have_text("Season 1")
    assert len(tab.sockets) == sockets  # an archive does not change: no socket

    page.get_by_role("link", name="Back to the live board").click()
    expect(page).to_have_url(boards_server.base_url + "/?board=season")
    expect(page.locator("#period-label")).to_have_text("Season 3")
    wait_for_rows(page, [], 5, time.monotonic())
    only_own_origin(tab, boards_server)
    assert tab.errors == []


def test_past_periods_come_ten_at_a_time(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    for _ in range(10):  # seasons 1..10 past, 11 current
        boards_server.run("boards", "rollover", "season")
    wait_until(lambda: boards_api.board("season")["period"]["id"] == "11", 5, "season 11")
    page = tab.page
    page.goto(boards_server.base_url + "/?board=season")
    page.locator("#archives summary").click()
    # The first page of ten holds the current season, which is the live board, not a past one.
    expect(page.locator("#periods a")).to_have_text([f"Season {n}" for n in range(10, 1, -1)])
    expect(page.locator("#periods .leader")).to_have_text(["No scores"] * 9)
    older = page.get_by_role("button", name="Show older")
    older.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#periods a")).to_have_text([f"Season {n}" for n in range(10, 0, -1)])
    expect(older).to_be_hidden()  # nothing older: the reader carries on from what it showed
    expect(page.get_by_role("link", name="Season 1", exact=True)).to_be_focused()
    assert tab.errors == []


def test_an_archive_of_the_current_period_is_the_live_board(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    page = tab.page
    page.goto(boards_server.base_url + "/?board=season&period=1")
    expect(status(page)).to_have_text("Live")
    expect(page).to_have_url(boards_server.base_url + "/?board=season")
    page.goto(boards_server.base_url + "/?board=season&period=7")  # never started
    expect(page.locator("#notice")).to_have_text(
        "This board has no period “7”: it never started, or it is no longer kept."
    )
    expect(status(page)).to_have_text("Not found")
    assert tab.errors == []


def test_embed_of_a_past_period_shows_its_final_top_10(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    some_scores(boards_api)
    new_season(boards_server, boards_api, 2)
    boards_api.update("alan", 50, name="Alan")  # season 2, not the archive
    page = tab.page
    page.goto(boards_server.base_url + "/embed?board=season&period=1")
    wait_for_rows(page, [["1", "Ada", "30"], ["2", "Alan", "20"], ["3", "Grace", "10"]], 5,
                  time.monotonic())  # fmt: skip
    expect(page.locator("main h1")).to_have_text("Season")
    expect(page.locator("#winner")).to_have_text("Winner: Ada, 30 points")
    expect(status(page)).to_have_text("Final")
    assert tab.sockets == []
    assert page.locator("a, details, [role=tab]").count() == 0  # nothing to leave the frame by

    page.goto(boards_server.base_url + "/embed?board=season")  # the live season
    wait_for_rows(page, [["1", "Alan", "50"]], 5, time.monotonic())
    expect(page.locator("#period-label")).to_have_text("Season 2")
    assert tab.errors == []


def test_a_phone_width_screen_shows_the_tabs_and_past_periods_without_sideways_scrolling(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    some_scores(boards_api)
    new_season(boards_server, boards_api, 2)
    page = tab.page
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(boards_server.base_url + "/?board=season")
    page.locator("#archives summary").click()
    expect(page.locator("#periods .leader")).to_have_text(["Winner: Ada, 30 points"])
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    for element in page.get_by_role("tab").all() + page.locator("#periods li > *").all():
        box = element.bounding_box()
        assert box is not None
        assert 0 <= box["x"] <= box["x"] + box["width"] <= 360, (element, box)
