"""The admin page (``/admin``) in a real Chromium, against a real server process with a real
admin key (made by ``scoreboard admin-key create``, as an operator would): the key pasted and
kept in the tab only, a user looked up, an event voided and restored, a ban seen live on the
public page open in another tab, erasure behind typing the id again, every other action, phone
width, the keyboard, and axe-core."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.browser import axe, chromium

chromium.require()

from playwright.sync_api import expect  # noqa: E402

from tests.browser.board_view import only_own_origin, wait_for_rows  # noqa: E402
from tests.browser.conftest import Api, Tab  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402
from tests.support.timing import scaled  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 740}


def create_key(server: ServerProcess, name: str = "browser") -> str:
    """A new admin key, printed once by the CLI on the server's own database."""
    return server.run("admin-key", "create", name).stdout.strip()


@pytest.fixture
def key(server: ServerProcess) -> str:
    return create_key(server)


@pytest.fixture
def admin_http(server: ServerProcess, key: str) -> Iterator[httpx.Client]:
    """The admin API with the same key, to check what the page did."""
    client = httpx.Client(
        base_url=server.base_url + "/api/admin",
        headers={"Authorization": f"Bearer {key}"},
        timeout=scaled(10),
    )
    yield client
    client.close()


def sign_in(page: Page, base_url: str, key: str) -> None:
    page.goto(base_url + "/admin")
    page.get_by_label("Paste an admin key").fill(key)
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_role("heading", name="Find a user")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Key accepted.")


def look_up(page: Page, user_id: str) -> None:
    page.get_by_label("User id", exact=True).fill(user_id)
    page.get_by_role("button", name="Look up").click()
    expect(page.locator("#user-title")).to_have_text(user_id)


_RANKS_JS = """() => Array.from(document.querySelectorAll("#ranks tbody tr"),
                                 r => Array.from(r.cells, c => c.textContent))"""


def ranks(page: Page) -> list[list[str]]:
    rows: list[list[str]] = page.evaluate(_RANKS_JS)
    return rows


def wait_for_ranks(page: Page, want: list[list[str]]) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            f"want => JSON.stringify(({_RANKS_JS})()) === JSON.stringify(want)",
            arg=want,
            timeout=scaled(5) * 1000,
        )
    except PlaywrightTimeout:
        raise AssertionError(f"the page should show {want}, it shows {ranks(page)}") from None


def events(page: Page) -> list[str]:
    """Each event as one line: its id, change, source, state."""
    found: list[str] = page.evaluate(
        """() => Array.from(document.querySelectorAll("#events li"), li =>
              [".id", ".what", ".source", ".state"]
                .map(s => li.querySelector(s).textContent.trim()).join(" | "))"""
    )
    return found


def confirm(page: Page, reason: str, typed: str | None = None) -> None:
    """Fill the open dialog and confirm it with Enter, as from the keyboard."""
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    if typed is not None:
        dialog.get_by_label("Type the user id again to confirm").fill(typed)
    dialog.get_by_label("Reason").fill(reason)
    dialog.get_by_label("Reason").press("Enter")


def assert_key_kept_in_the_tab_only(page: Page, key: str) -> None:
    assert page.evaluate("() => sessionStorage.getItem('scoreboard.admin-key')") == key
    assert page.evaluate("() => localStorage.length") == 0
    assert page.context.cookies() == []
    assert key not in page.url
    assert page.evaluate("() => document.cookie") == ""


# -- the key and a user --------------------------------------------------------------------------


def test_a_pasted_key_finds_a_user_with_their_boards_and_events(
    server: ServerProcess, api: Api, tab: Tab, key: str
) -> None:
    api.update("ada", 30, name="Ada Lovelace")
    api.update("alan", 40, name="Alan Turing")
    api.update("ada", 12, name="Ada Lovelace")
    page = tab.page
    sign_in(page, server.base_url, key)
    assert_key_kept_in_the_tab_only(page, key)
    assert page.get_by_label("Paste an admin key").input_value() == ""

    look_up(page, "ada")
    expect(page.locator("#user-name")).to_have_text("Ada Lovelace")
    expect(page.locator("#user-status")).to_have_text(re.compile("^Active"))
    period = api.board("main")["period"]["id"]
    title = api.board("main")["title"]
    wait_for_ranks(page, [[title, period, "42", "#1"]])
    newest, first = events(page)
    assert re.fullmatch(r"#\d+ \| \+12 points \| by the user \| Counts", newest), newest
    assert re.fullmatch(r"#\d+ \| \+30 points \| by the user \| Counts", first), first
    # The audit is on the page from the start (empty here), and every request stayed home.
    expect(page.locator("#audit-empty")).to_be_visible()
    only_own_origin(tab, server)

    # A reload of the tab keeps the key (sessionStorage), still not in a cookie or the URL.
    page.reload()
    expect(page.get_by_role("heading", name="Find a user")).to_be_visible()
    assert_key_kept_in_the_tab_only(page, key)
    # A new tab of another context does not have it: the key stays in the tab it was pasted in.
    other = page.context.browser.new_context()  # type: ignore[union-attr]
    try:
        fresh = other.new_page()
        fresh.goto(server.base_url + "/admin")
        expect(fresh.get_by_label("Paste an admin key")).to_be_visible()
        assert fresh.evaluate("() => sessionStorage.length") == 0
    finally:
        other.close()

    page.get_by_role("button", name="Forget the key").click()
    expect(page.get_by_label("Paste an admin key")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
    assert tab.errors == []


def test_a_refused_key_is_said_in_an_alert_and_not_kept(server: ServerProcess, tab: Tab) -> None:
    page = tab.page
    page.goto(server.base_url + "/admin")
    page.get_by_label("Paste an admin key").fill("sbk_" + "x" * 43)
    page.get_by_role("button", name="Use this key").click()
    expect(page.get_by_role("alert").first).to_have_text(re.compile(r"refused \(401"))
    expect(page.get_by_label("Paste an admin key")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
    assert tab.errors == []


def test_an_unknown_user_is_the_apis_404_in_an_alert(
    server: ServerProcess, tab: Tab, key: str
) -> None:
    page = tab.page
    sign_in(page, server.base_url, key)
    page.get_by_label("User id", exact=True).fill("nobody")
    page.get_by_role("button", name="Look up").click()
    expect(page.locator("#alert")).to_have_text("404 unknown_user: there is no user 'nobody'")
    expect(page.locator("#user")).to_be_hidden()


# -- actions -------------------------------------------------------------------------------------


def test_void_then_restore_changes_the_score_shown(
    server: ServerProcess, api: Api, tab: Tab, key: str, admin_http: httpx.Client
) -> None:
    api.update("ada", 30, name="Ada")
    api.update("ada", 12, name="Ada")
    page = tab.page
    sign_in(page, server.base_url, key)
    look_up(page, "ada")
    period = api.board("main")["period"]["id"]
    title = api.board("main")["title"]
    wait_for_ranks(page, [[title, period, "42", "#1"]])

    # From the keyboard: the newest event's Void button, Enter, a reason, Enter.
    void = page.locator("#events li").first.get_by_role("button")
    expect(void).to_have_accessible_name(re.compile(r"^Void event \d+$"))
    void.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.get_by_role("dialog").get_by_label("Reason")).to_be_focused()
    page.keyboard.type("bot run")
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_hidden()
    wait_for_ranks(page, [[title, period, "30", "#1"]])
    assert events(page)[0].endswith("| Voided")
    expect(void).to_have_accessible_name(re.compile(r"^Restore event \d+$"))
    expect(void).to_be_focused()  # the same button, now Restore: the reader stays in place
    assert api.top10()[0]["score"] == 30

    void.click()
    confirm(page, "appeal upheld")
    wait_for_ranks(page, [[title, period, "42", "#1"]])
    assert events(page)[0].endswith("| Counts")
    assert api.top10()[0]["score"] == 42
    actions = [e["action"] for e in admin_http.get("/audit").json()["entries"]]
    assert actions == ["restore", "void"]
    # The audit on the page was read again after each action, reasons included.
    expect(page.locator("#audit li")).to_have_count(2)
    expect(page.locator("#audit li").first).to_contain_text("appeal upheld")
    assert tab.errors == []


def test_an_action_without_a_reason_asks_for_one_and_sends_nothing(
    server: ServerProcess, api: Api, tab: Tab, key: str, admin_http: httpx.Client
) -> None:
    api.update("ada", 30, name="Ada")
    page = tab.page
    sign_in(page, server.base_url, key)
    look_up(page, "ada")
    page.get_by_role("button", name="Hide", exact=True).click()
    page.get_by_role("dialog").get_by_label("Reason").press("Enter")
    expect(page.locator("#confirm-alert")).to_have_text(re.compile("Give a reason"))
    expect(page.get_by_role("dialog")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(page.get_by_role("button", name="Hide", exact=True)).to_be_focused()
    assert admin_http.get("/audit").json()["entries"] == []
    assert admin_http.get("/users/ada").json()["status"] == "active"


def test_erasure_needs_the_user_id_typed_again(
    server: ServerProcess, api: Api, tab: Tab, key: str, admin_http: httpx.Client
) -> None:
    api.update("mallory", 30, name="Mallory")
    page = tab.page
    sign_in(page, server.base_url, key)
    look_up(page, "mallory")
    page.get_by_role("button", name="Erase this user…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Type the user id again to confirm")).to_be_focused()

    confirm(page, "GDPR request 12", typed="")
    expect(page.locator("#confirm-alert")).to_have_text(re.compile("Type mallory exactly"))
    confirm(page, "GDPR request 12", typed="Mallory")
    expect(page.locator("#confirm-alert")).to_have_text(re.compile("nothing was erased"))
    assert admin_http.get("/users/mallory").status_code == 200

    confirm(page, "GDPR request 12", typed="mallory")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status")).to_have_text(re.compile(r"^mallory is erased"))
    expect(page.locator("#user")).to_be_hidden()
    expect(page.get_by_label("User id", exact=True)).to_be_focused()
    assert admin_http.get("/users/mallory").status_code == 404
    assert api.top10() == []
    assert tab.errors == []


def test_adjust_rename_hide_and_their_undo(
    server: ServerProcess, api: Api, tab: Tab, key: str, admin_http: httpx.Client
) -> None:
    api.update("ada", 30, name="Ada")
    page = tab.page
    sign_in(page, server.base_url, key)
    look_up(page, "ada")
    period = api.board("main")["period"]["id"]
    title = api.board("main")["title"]

    # Adjust: the action id is made by the page, shown, and new after each success.
    first_id = page.locator("#adjust-action").text_content()
    assert first_id is not None
    assert re.fullmatch(r"admin-[0-9a-f]{24}", first_id)
    page.get_by_label("Change (may be negative)").fill("-5")
    second_id = page.locator("#adjust-action").text_content()
    page.locator("#adjust-reason").fill("double credit")
    page.locator("#adjust-reason").press("Enter")
    wait_for_ranks(page, [[title, period, "25", "#1"]])
    minus = "\N{MINUS SIGN}"  # the page writes negative changes with a true minus sign
    assert re.fullmatch(rf"#\d+ \| {minus}5 points \| by an operator \| Counts", events(page)[0])
    assert page.locator("#adjust-action").text_content() not in (first_id, second_id)
    adjusted = admin_http.get("/users/ada/events").json()["events"][0]
    assert adjusted["action_id"] == second_id
    assert adjusted["source"] == "admin"

    # Rename, locked; then unlocked.
    page.get_by_label("New display name").fill("Player 7")
    page.locator("#rename-reason").fill("offensive name")
    page.get_by_role("button", name="Rename").click()
    expect(page.locator("#user-name")).to_have_text("Player 7 (locked by an operator)")
    assert api.top10()[0]["username"] == "Player 7"
    page.get_by_role("button", name="Unlock the name").click()
    confirm(page, "ok now")
    expect(page.locator("#user-name")).to_have_text("Player 7")
    expect(page.get_by_role("button", name="Unlock the name")).to_be_hidden()

    # Hide, then unhide: the other button takes the focus, so the keyboard is not lost.
    page.get_by_role("button", name="Hide", exact=True).click()
    confirm(page, "under review")
    expect(page.locator("#user-status")).to_have_text(re.compile("^Hidden"))
    expect(page.get_by_role("button", name="Unhide")).to_be_focused()
    wait_for_ranks(page, [[title, period, "25", "not ranked"]])
    assert api.top10() == []
    page.keyboard.press("Enter")
    confirm(page, "cleared")
    expect(page.locator("#user-status")).to_have_text(re.compile("^Active"))
    wait_for_ranks(page, [[title, period, "25", "#1"]])

    actions = [e["action"] for e in admin_http.get("/audit").json()["entries"]]
    assert actions == ["unhide", "hide", "unlock_name", "rename", "adjust"]
    assert tab.errors == []


def test_the_events_and_the_audit_are_paged(
    server: ServerProcess, api: Api, tab: Tab, key: str, admin_http: httpx.Client
) -> None:
    for _ in range(25):
        api.update("ada", 1, name="Ada")
    for i in range(22):
        action = "hide" if i % 2 == 0 else "unhide"
        assert admin_http.post(f"/users/ada/{action}", json={"reason": f"look {i}"}).is_success
    page = tab.page
    sign_in(page, server.base_url, key)
    expect(page.locator("#audit li")).to_have_count(20)
    page.get_by_role("button", name="Show older entries").click()
    expect(page.locator("#audit li")).to_have_count(22)
    expect(page.get_by_role("button", name="Show older entries")).to_be_hidden()
    expect(page.locator("#audit li").last).to_contain_text("look 0")

    look_up(page, "ada")
    expect(page.locator("#events li")).to_have_count(20)
    page.get_by_role("button", name="Show older events").click()
    expect(page.locator("#events li")).to_have_count(25)
    expect(page.get_by_role("button", name="Show older events")).to_be_hidden()
    # The last page came: the focus is on the first event it brought.
    expect(page.locator("#events li").nth(20).get_by_role("button")).to_be_focused()
    ids = [int(line.split(" ")[0][1:]) for line in events(page)]
    assert ids == sorted(ids, reverse=True)
    assert len(set(ids)) == 25


def test_a_manual_board_rolls_over_from_the_page(
    boards_server: ServerProcess, boards_api: Api, tab: Tab
) -> None:
    key = create_key(boards_server)
    before = boards_api.board("season")["period"]["id"]
    page = tab.page
    sign_in(page, boards_server.base_url, key)
    expect(page.get_by_label("Manual board")).to_have_value("season")
    page.locator("#rollover-reason").fill("season 2")
    page.get_by_role("button", name="Start the next season").click()
    expect(page.get_by_role("status")).to_have_text(re.compile(rf"period {before} ended"))
    assert boards_api.board("season")["period"]["id"] != before
    expect(page.locator("#audit li").first).to_contain_text("board:season")
    assert tab.errors == []


# -- the headline: a ban reaches the public page, live -------------------------------------------


def test_a_ban_on_the_admin_page_removes_the_user_from_the_open_public_page_live(
    server: ServerProcess, api: Api, tab: Tab, key: str
) -> None:
    api.update("cheat", 900, name="Cheater")
    api.update("ada", 50, name="Ada")
    public = tab.page
    public.goto(server.base_url + "/")
    wait_for_rows(public, [["1", "Cheater", "900"], ["2", "Ada", "50"]], 5, time.monotonic())
    public.evaluate("() => { window.notReloaded = true; }")

    admin = public.context.new_page()  # another tab of the same browser
    sign_in(admin, server.base_url, key)
    look_up(admin, "cheat")
    admin.get_by_role("button", name="Ban", exact=True).click()
    confirm(admin, "cheating")
    started = time.monotonic()
    expect(admin.locator("#user-status")).to_have_text(re.compile("^Banned"))

    wait_for_rows(public, [["1", "Ada", "50"]], 3, started)
    assert public.evaluate("() => window.notReloaded") is True
    assert public.evaluate("() => window.scoreboard.connects") == 1

    # And back, the same way.
    admin.get_by_role("button", name="Unban").click()
    confirm(admin, "appeal upheld")
    started = time.monotonic()
    wait_for_rows(public, [["1", "Cheater", "900"], ["2", "Ada", "50"]], 3, started)
    assert tab.errors == []


# -- phone, accessibility ------------------------------------------------------------------------


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, locale="en-US"
    )
    context.set_default_timeout(scaled(10) * 1000)
    yield context.new_page()
    context.close()


def no_sideways_scroll(page: Page) -> None:
    width: dict[str, Any] = page.evaluate(
        "() => ({page: document.documentElement.scrollWidth, view: window.innerWidth})"
    )
    assert width["page"] <= width["view"], width


def test_the_page_works_at_phone_width(
    server: ServerProcess, api: Api, phone: Page, key: str
) -> None:
    api.update("a-player-with-a-rather-long-id@example", 30, name="A Very Long Display Name Indeed")
    page = phone
    page.goto(server.base_url + "/admin")
    no_sideways_scroll(page)
    page.get_by_label("Paste an admin key").fill(key)
    page.get_by_role("button", name="Use this key").tap()
    look_up(page, "a-player-with-a-rather-long-id@example")
    no_sideways_scroll(page)
    void = page.locator("#events li").first.get_by_role("button")
    void.tap()
    dialog = page.get_by_role("dialog")
    box = dialog.bounding_box()
    assert box is not None
    assert 0 <= box["x"] <= box["x"] + box["width"] <= PHONE["width"]
    confirm(page, "bot run")
    expect(page.locator("#events li .state").first).to_have_text("Voided")
    page.get_by_role("button", name="Ban", exact=True).tap()
    confirm(page, "cheating")
    expect(page.locator("#user-status")).to_have_text(re.compile("^Banned"))
    no_sideways_scroll(page)
    # Every control is big enough to hit with a thumb (WCAG 2.2's 24 px, with room).
    small: list[str] = page.evaluate(
        """() => Array.from(document.querySelectorAll("button, input, select"))
                  .filter(e => e.offsetParent !== null)
                  .filter(e => e.getBoundingClientRect().height < 36)
                  .map(e => e.id || e.textContent)"""
    )
    assert small == []


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_axe_violations_on_the_key_screen_a_loaded_user_and_the_dialog(
    server: ServerProcess, api: Api, tab: Tab, key: str, admin_http: httpx.Client, scheme: str
) -> None:
    axe.require()
    api.update("ada", 30, name="Ada")
    api.update("ada", 12, name="Ada")
    event = admin_http.get("/users/ada/events").json()["events"][0]["event_id"]
    assert admin_http.post(f"/events/{event}/void", json={"reason": "test"}).status_code == 200
    page = tab.page
    page.emulate_media(color_scheme=scheme)
    page.goto(server.base_url + "/admin")
    axe.assert_accessible(page)

    # The refused key's alert, then a good key, a user with a voided event, the audit.
    page.get_by_label("Paste an admin key").fill("sbk_" + "x" * 43)
    page.get_by_role("button", name="Use this key").click()
    expect(page.locator("#alert")).not_to_be_empty()
    axe.assert_accessible(page)
    sign_in(page, server.base_url, key)
    look_up(page, "ada")
    expect(page.locator("#events li")).to_have_count(2)
    page.locator("#events li").first.get_by_role("button").focus()
    axe.assert_accessible(page)

    page.get_by_role("button", name="Erase this user…").click()
    confirm(page, "x", typed="wrong")
    expect(page.locator("#confirm-alert")).not_to_be_empty()
    axe.assert_accessible(page)
