"""client.js, the browser client, in a real Chromium.

First its rules at unit level, with no server: the module is served from a made-up origin by
Playwright's routing, and each test hands it a fake socket and fake timers (the client takes
both as options, as time is a dependency everywhere in this project), so the reconnection
delays, ``seq``'s stale and gap rules, resubscribing, errors and the async iterator are checked
step by step. Then against real server processes: a restart, resubscribing, and a missed
``seq`` (a message dropped on its way by Playwright's WebSocket routing)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from tests.browser import chromium

chromium.require()

from playwright.sync_api import Page, expect  # noqa: E402

from tests.browser.board_view import rows_of, status, wait_for_rows  # noqa: E402
from tests.browser.conftest import Api, Tab  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402
from tests.support.timing import scaled  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Route, WebSocketRoute

pytestmark = pytest.mark.browser

ORIGIN = "http://client.test"
STATIC = resources.files("scoreboard.web") / "static"

# A socket the test drives by hand, and timers that fire when the test says. `h.fire()` runs
# the oldest pending timer; `h.timers.delays` lists every delay asked for.
HARNESS = """async () => {
  const client = await import("/client.js");
  class FakeSocket {
    static made = [];
    constructor(url) {
      this.url = url; this.sent = []; this.readyState = 0; this.closedWith = null;
      FakeSocket.made.push(this);
    }
    send(text) { this.sent.push(JSON.parse(text)); }
    close(code) { this.readyState = 3; this.closedWith = code; }
    open() { this.readyState = 1; this.onopen?.({}); }
    receive(message) { this.onmessage?.({ data: JSON.stringify(message) }); }
    receiveText(text) { this.onmessage?.({ data: text }); }
    drop(code = 1006) { this.readyState = 3; this.onclose?.({ code }); }
  }
  const timers = { delays: [], due: [] };
  const h = {
    client, FakeSocket, timers, randomValue: 0,
    seams: () => ({
      WebSocket: FakeSocket,
      random: () => h.randomValue,
      setTimeout: (fn, ms) => { timers.delays.push(ms); timers.due.push(fn); return fn; },
      clearTimeout: (fn) => {
        const i = timers.due.indexOf(fn);
        if (i >= 0) timers.due.splice(i, 1);
      },
    }),
    fire: () => timers.due.shift()(),
    last: () => FakeSocket.made[FakeSocket.made.length - 1],
  };
  window.h = h;
}"""


@pytest.fixture
def unit(tab: Tab) -> Page:
    """A blank page on a made-up origin that serves client.js from the package, harness loaded."""
    page = tab.page

    def serve(route: Route) -> None:
        path = urlsplit(route.request.url).path
        if path == "/client.js":
            body = (STATIC / "client.js").read_text(encoding="utf-8")
            route.fulfill(body=body, content_type="text/javascript; charset=utf-8")
        else:
            route.fulfill(body="<!doctype html><title>client.js</title>", content_type="text/html")

    page.route(ORIGIN + "/**", serve)
    page.goto(ORIGIN + "/")
    page.evaluate(HARNESS)
    return page


def run(page: Page, body: str) -> Any:
    """``body`` (statements ending in ``return``) run as an async function with ``h`` in scope."""
    return page.evaluate(f"async () => {{ const h = window.h; {body} }}")


# -- Unit level -----------------------------------------------------------------------------------


def test_the_reconnection_delay_doubles_to_8_s_with_jitter(unit: Page) -> None:
    got = run(unit, "return [0, 0.5, 0.999].map(r => [0, 1, 2, 3, 4, 5, 30].map(a => "
                    "h.client.retryDelay(a, r)));")  # fmt: skip
    # Equal jitter: half the ceiling fixed, half random; the ceiling doubles from 0.5 s to 8 s.
    assert got[0] == [250, 500, 1000, 2000, 4000, 4000, 4000]
    assert got[1] == [375, 750, 1500, 3000, 6000, 6000, 6000]
    assert [round(d) for d in got[2]] == [500, 1000, 1999, 3998, 7996, 7996, 7996]


def test_a_board_connection_retries_and_starts_over_only_once_the_server_answered(
    unit: Page,
) -> None:
    got = run(
        unit,
        """
        const c = h.client.connect({ url: "http://x.test", board: "main", ...h.seams() });
        const statuses = [];
        c.on("status", (s) => statuses.push(s));
        // Accepted, then closed before any state: not an answer, so the delays keep growing.
        for (let i = 0; i < 6; i++) { h.last().open(); h.last().drop(); h.fire(); }
        const s = h.last();
        s.open();
        s.receive({ type: "SNAPSHOT", data: { rankings: [], seq: 1 } });
        s.drop(1001);
        const afterAnswer = h.timers.delays.slice();
        c.close();
        return { delays: afterAnswer, sockets: h.FakeSocket.made.length, statuses,
                 connects: c.stats.connects, pending: h.timers.due.length };
        """,
    )
    assert got["delays"] == [250, 500, 1000, 2000, 4000, 4000, 250]
    assert got["sockets"] == got["connects"] == 7
    assert got["statuses"] == ["reconnecting", "live", "reconnecting", "closed"]
    assert got["pending"] == 0  # close() cancelled the retry


def test_back_online_a_waiting_connection_tries_at_once(unit: Page) -> None:
    got = run(
        unit,
        """
        const c = h.client.connect({ url: "http://x.test", board: "main", ...h.seams() });
        h.last().drop();                         // offline: the retry waits 250 ms
        const waiting = h.timers.due.length;
        window.dispatchEvent(new Event("online"));
        const sockets = h.FakeSocket.made.length;
        c.close();
        window.dispatchEvent(new Event("online"));  // closed: nothing opens any more
        return { waiting, due: h.timers.due.length, sockets, after: h.FakeSocket.made.length };
        """,
    )
    assert got == {"waiting": 1, "due": 0, "sockets": 2, "after": 2}


def test_board_states_drop_stale_ones_count_gaps_and_take_a_snapshot_as_the_truth(
    unit: Page,
) -> None:
    got = run(
        unit,
        """
        const seen = [];
        const c = h.client.connect({ url: "https://scores.test/under/", board: "week-2",
                                     onState: (s) => seen.push(`${s.type} ${s.seq}`),
                                     ...h.seams() });
        const s = h.last();
        s.open();
        const top = (seq, type = "SCORE_UPDATE", more = {}) =>
          ({ type, data: { board: "week-2", period: "W1", rankings: [], seq, ...more } });
        s.receive(top(3));                       // before any snapshot: nothing to follow
        s.receive(top(10, "SNAPSHOT"));
        s.receive(top(11, "SCORE_UPDATE", { user_id: "ada", new_score: 5 }));
        s.receive(top(11));                      // stale: the same seq again
        s.receive(top(9));                       // stale: older
        s.receive(top(14));                      // a gap: 12 and 13 skipped; whole, so taken
        s.receive(top(15, "PERIOD_STARTED", { period: "W2", previous: "W1" }));
        s.receiveText("not json");
        s.receive({ type: "HELLO", data: { rankings: [], seq: 16 } });
        s.receive({ type: "SCORE_UPDATE", data: { board: "other", rankings: [], seq: 17 } });
        const last = c.state;
        s.drop();
        h.fire();
        const t = h.last();
        t.open();
        s.receive(top(99));                      // the old socket, late: ignored
        t.receive(top(2, "SNAPSHOT"));           // a restarted server counts from 1 again
        return { url: s.url, seen, stats: c.stats, last, status: c.status };
        """,
    )
    assert got["url"] == "wss://scores.test/under/ws/boards/week-2"
    assert got["seen"] == [
        "SNAPSHOT 10",
        "SCORE_UPDATE 11",
        "SCORE_UPDATE 14",
        "PERIOD_STARTED 15",
        "SNAPSHOT 2",
    ]
    assert got["stats"] == {"connects": 2, "states": 5, "stale": 3, "gaps": 1}
    assert got["last"] == {
        "type": "PERIOD_STARTED",
        "board": "week-2",
        "period": "W2",
        "seq": 15,
        "rankings": [],
        "user_id": None,
        "new_score": None,
        "previous": "W1",
    }
    assert got["status"] == "live"


def test_the_socket_address_follows_the_server_given_or_the_modules_own(unit: Page) -> None:
    got = run(
        unit,
        """
        const u = h.client.socketUrl;
        return [
          u(undefined, "ws"), u("http://a.test:81", "ws/scoreboard"), u("https://a.test/x", "ws"),
          u("wss://a.test/x/?q=1#f", "ws"), u("/sub/", "ws"),
          h.client.connect({ ...h.seams() }).url,
          h.client.connect({ board: "a b", ...h.seams() }).url,
        ];
        """,
    )
    assert got == [
        "ws://client.test/ws",
        "ws://a.test:81/ws/scoreboard",
        "wss://a.test/x/ws",
        "wss://a.test/x/ws",
        "ws://client.test/sub/ws",
        "ws://client.test/ws/scoreboard",  # no board: the seed's channel, the default board
        "ws://client.test/ws/boards/a%20b",
    ]
    refused = run(unit, """try { h.client.socketUrl("ftp://a.test", "ws"); }
                            catch (e) { return [e.name, e.code]; }""")  # fmt: skip
    assert refused == ["SubscriptionError", "invalid_url"]


def test_views_share_a_socket_and_are_resubscribed_with_new_ids_after_a_reconnect(
    unit: Page,
) -> None:
    got = run(
        unit,
        """
        const states = { a: [], b: [] };
        const a = h.client.subscribe({ url: "http://x.test", board: "main", view: "around",
                                       user_id: "ada", radius: 2, ...h.seams(),
                                       onState: (s) => states.a.push(s.seq) });
        const b = h.client.subscribe({ url: "http://x.test", board: "weekly", view: "top",
                                       limit: 3, ...h.seams(),
                                       onState: (s) => states.b.push(s.seq) });
        const sockets = h.FakeSocket.made.length;
        const s = h.last();
        s.open();
        const firstSent = s.sent.slice();
        const view = (id, seq, type = "update") =>
          ({ type, id, board: "main", period: "all", seq, rows: [{ rank: seq, user_id: "ada",
                                                                   username: "Ada", score: 1 }] });
        s.receive(view("c1", 1, "snapshot"));
        s.receive(view("c1", 3));                // a gap: the state is whole, so it is taken
        s.receive(view("c1", 2));                // stale
        s.receive(view("c2", 1, "snapshot"));
        s.receive(view("nope", 5));              // no such subscription
        s.drop(1013);                            // "too far behind: resubscribe"
        const during = [a.status, b.status];
        h.fire();
        const t = h.last();
        t.open();
        const secondSent = t.sent.slice();
        t.receive(view("c1", 9));                // the old id on the new socket: not ours any more
        t.receive(view("c3", 1, "snapshot"));    // the new subscription counts from 1
        t.receive(view("c4", 1, "snapshot"));
        a.close();
        const afterA = { sent: t.sent.slice(secondSent.length), closed: t.closedWith };
        b.close();
        return { sockets, firstSent, secondSent, states, afterA, closed: t.closedWith,
                 during, a: a.stats, status: [a.status, b.status] };
        """,
    )
    assert got["sockets"] == 1  # one socket for both
    assert got["firstSent"] == [
        {
            "type": "subscribe",
            "id": "c1",
            "board": "main",
            "view": "around",
            "user_id": "ada",
            "radius": 2,
        },
        {"type": "subscribe", "id": "c2", "board": "weekly", "view": "top", "limit": 3},
    ]
    assert got["during"] == ["reconnecting", "reconnecting"]
    assert got["secondSent"] == [
        {**got["firstSent"][0], "id": "c3"},
        {**got["firstSent"][1], "id": "c4"},
    ]
    assert got["states"] == {"a": [1, 3, 1], "b": [1, 1]}
    assert got["a"] == {"subscribes": 2, "states": 3, "events": 0, "stale": 1, "gaps": 1}
    assert got["afterA"] == {"sent": [{"type": "unsubscribe", "id": "c3"}], "closed": None}
    assert got["closed"] == 1000  # the last subscription closed the socket
    assert got["status"] == ["closed", "closed"]


def test_a_refusal_ends_the_subscription_and_unavailable_is_asked_again(unit: Page) -> None:
    got = run(
        unit,
        """
        const errors = [];
        const bad = h.client.subscribe({ url: "http://x.test", board: "main", view: "around",
                                         user_id: "ada", radius: 99, ...h.seams(),
                                         onError: (e) => errors.push(e.code) });
        const busy = h.client.subscribe({ url: "http://x.test", board: "main", view: "top",
                                          ...h.seams(), onError: (e) => errors.push(e.code) });
        const s = h.last();
        s.open();
        const loop = (async () => {
          try { for await (const _ of bad) {} return "ended"; }
          catch (e) { return `${e.name} ${e.code}: ${e.message}`; }
        })();
        s.receive({ type: "error", id: "c1", error: "invalid_radius",
                    message: "radius must be an integer from 1 to 25" });
        s.receive({ type: "error", id: "c2", error: "unavailable", message: "try again" });
        const before = s.sent.length;
        const waiting = [busy.status, h.timers.delays.slice()];
        h.fire();
        const again = s.sent.slice(before);
        s.receive({ type: "snapshot", id: "c3", board: "main", period: "all", seq: 1, rows: [] });
        let thrown = null;
        try { h.client.subscribe({ board: "main", view: "sideways", ...h.seams() }); }
        catch (e) { thrown = e.code; }
        return { errors, ended: await loop, bad: bad.status, waiting, again, busy: busy.status,
                 thrown, sockets: h.FakeSocket.made.length,
                 unsubscribed: s.sent.filter((m) => m.type === "unsubscribe") };
        """,
    )
    assert got["errors"] == ["invalid_radius", "unavailable"]
    assert got["ended"] == (
        "SubscriptionError invalid_radius: radius must be an integer from 1 to 25"
    )
    assert got["bad"] == "closed"
    assert got["unsubscribed"] == []  # a refused subscription is not open on the server
    assert got["waiting"] == ["reconnecting", [250]]
    assert got["again"] == [{"type": "subscribe", "id": "c3", "board": "main", "view": "top"}]
    assert got["busy"] == "live"
    assert got["thrown"] == "invalid_view"  # refused before anything is sent
    assert got["sockets"] == 1


def test_past_20_subscriptions_another_socket_opens(unit: Page) -> None:
    got = run(
        unit,
        """
        const subs = [];
        for (let i = 0; i < 21; i++) {
          subs.push(h.client.subscribe({ url: "http://x.test", board: "main", view: "around",
                                         user_id: `u${i}`, ...h.seams() }));
        }
        const counts = h.FakeSocket.made.map((s) => { s.open(); return s.sent.length; });
        subs[20].close();
        return { counts, second: h.FakeSocket.made[1].closedWith,
                 first: h.FakeSocket.made[0].closedWith };
        """,
    )
    assert got == {"counts": [20, 1], "second": 1000, "first": None}


def test_the_async_iterator_keeps_events_in_order_and_only_the_newest_state(unit: Page) -> None:
    got = run(
        unit,
        """
        const sub = h.client.subscribe({ url: "http://y.test", board: "main", view: "me",
                                         auth_token: "a.b.c", ...h.seams() });
        const s = h.last();
        s.open();
        const it = sub[Symbol.asyncIterator]();
        const state = (seq, type = "update") =>
          ({ type, id: "c1", board: "main", period: "all", seq, rows: [] });
        s.receive(state(1, "snapshot"));
        s.receive(state(2));
        s.receive({ type: "event", id: "c1", event: "overtaken", board: "main", period: "all",
                    rank: 2, score: 5, by: { user_id: "bob", username: "Bob", score: 6 } });
        s.receive(state(3));
        s.receive(state(4));
        const got = [];
        for (let i = 0; i < 3; i++) {
          const { value } = await it.next();
          got.push(value.event ?? `${value.type} ${value.seq}`);
        }
        const pending = it.next();
        sub.close();
        const end = (await pending).done;
        // A loop left with break stops reading; the subscription stays.
        const other = h.client.subscribe({ url: "http://w.test", board: "main", view: "top",
                                           ...h.seams() });
        const w = h.last();
        w.open();
        const loop = (async () => { for await (const item of other) { return item.seq; } })();
        w.receive({ ...state(1, "snapshot"), id: "c1" });
        const first = await loop;
        const afterBreak = other.status;
        other.close();
        const event = await (async () => {
          const c = h.client.subscribe({ url: "http://z.test", board: "main", view: "me",
                                         auth_token: "t", ...h.seams() });
          const z = h.last(); z.open();
          const events = [];
          c.on("event", (e) => events.push(e));
          z.receive({ type: "event", id: "c1", event: "left_top", board: "main", period: "all",
                      rank: 11, score: 3, by: null });
          c.close();
          return events[0];
        })();
        return { got, first, afterBreak, end, event, sent: s.sent[0] };
        """,
    )
    # Snapshot 1 was replaced by update 2 before it was read; 3 by 4, after the event.
    assert got["got"] == ["update 2", "overtaken", "update 4"]
    assert got["end"] is True  # close() ended the loop that was waiting
    assert got["first"] == 1
    assert got["afterBreak"] == "live"
    assert got["event"] == {
        "event": "left_top",
        "board": "main",
        "period": "all",
        "rank": 11,
        "score": 3,
        "by": None,
    }
    assert got["sent"]["auth_token"] == "a.b.c"


# -- Against real servers -------------------------------------------------------------------------


def test_the_client_recovers_from_a_server_restart_and_resubscribes(
    server: ServerProcess, api: Api, tab: Tab
) -> None:
    """Both channels on the page (the board, and the find-me box's /ws view) come back after a
    real restart with the state the board reached while the page was cut off."""
    api.update("alice", 30, name="Alice")
    api.update("bob", 20, name="Bob")
    page = tab.page
    subscribes: list[dict[str, Any]] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda f: _note(subscribes, ws.url, f)))
    page.goto(server.base_url + "/?me=bob")
    wait_for_rows(page, [["1", "Alice", "30"], ["2", "Bob", "20"]], 5, time.monotonic())
    you = page.locator("#findme-you")
    expect(you).to_have_text("You are #2")

    server.stop()
    expect(status(page)).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#findme")).to_have_attribute("data-state", "reconnecting")
    other = ServerProcess(server.data_dir).start()  # the board moves while the page is away
    try:
        other_api = Api(other.base_url)
        other_api.update("bob", 15)  # 35: first
        other_api.client.close()
    finally:
        other.stop()
    server.start()

    since = time.monotonic()
    want = [["1", "Bob", "35"], ["2", "Alice", "30"]]
    wait_for_rows(page, want, 20, since)
    expect(you).to_have_text("You are #1", timeout=scaled(20) * 1000)
    expect(page.locator("#findme")).to_have_attribute("data-state", "live")
    assert len(subscribes) == 2  # subscribed once on each socket, the same request
    assert (
        subscribes[0]
        == subscribes[1]
        == {
            "type": "subscribe",
            "board": "main",
            "view": "around",
            "user_id": "bob",
            "radius": 3,
        }
    )
    assert page.evaluate("window.scoreboard.connects") >= 2
    # Still live after it: an update now reaches both.
    api.update("alice", 10)  # 40: first again
    wait_for_rows(page, [["1", "Alice", "40"], ["2", "Bob", "35"]], 5, time.monotonic())
    expect(you).to_have_text("You are #2")
    assert rows_of(api.top10()) == [["1", "Alice", "40"], ["2", "Bob", "35"]]
    assert tab.errors == []


def window_rows(page: Page) -> list[list[str]]:
    """The find-me box's rows, as text."""
    rows: list[list[str]] = page.evaluate(
        """() => Array.from(document.querySelectorAll("#findme-table tbody tr"),
                            r => Array.from(r.cells, c => c.textContent))"""
    )
    return rows


def pump_until(page: Page, condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for a condition set by a Playwright callback: those run only while Playwright is
    called, so the wait is Playwright's own (a bare sleep would starve them)."""
    deadline = time.monotonic() + scaled(timeout)
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {scaled(timeout):.1f}s waiting for {what}")
        page.wait_for_timeout(20)


def _note(into: list[dict[str, Any]], url: str, frame: str | bytes) -> None:
    if not url.endswith("/ws") or isinstance(frame, bytes):
        return
    message = json.loads(frame)
    if message.get("type") == "subscribe":
        message.pop("id")  # a new one on every socket
        into.append(message)


def test_a_missed_seq_is_healed_by_the_next_state_and_a_replayed_one_is_dropped(
    server: ServerProcess, api: Api, tab: Tab
) -> None:
    """Playwright stands between the page and the real server's /ws: it drops the view's second
    state on its way, then replays the first one after the third."""
    api.update("alice", 30, name="Alice")
    api.update("bob", 20, name="Bob")
    page = tab.page
    passed: list[dict[str, Any]] = []
    sent_to_page: list[str] = []

    def between(route: WebSocketRoute) -> None:
        upstream = route.connect_to_server()

        def down(text: str | bytes) -> None:
            message = json.loads(text)
            if message.get("type") in ("snapshot", "update"):
                passed.append(message)
                if message["seq"] == 2:
                    return  # lost on the way
            route.send(text)
            sent_to_page.append(str(text))
            if message.get("seq") == 3:
                route.send(sent_to_page[0])  # the snapshot again, late: stale

        upstream.on_message(down)

    page.route_web_socket(server.base_url.replace("http", "ws") + "/ws", between)
    page.goto(server.base_url + "/?me=bob")
    you = page.locator("#findme-you")
    expect(you).to_have_text("You are #2")

    api.update("bob", 5)  # 25: still second (seq 2, dropped)
    pump_until(page, lambda: len(passed) == 2, 5, "the server's second state")
    api.update("bob", 10)  # 35: first (seq 3)
    expect(you).to_have_text("You are #1")
    assert window_rows(page) == [["1", "Bob", "35"], ["2", "Alice", "30"]]
    page.wait_for_function("() => window.scoreboard.findme.view.stale === 1")
    stats = page.evaluate("window.scoreboard.findme.view")
    assert stats == {"subscribes": 1, "states": 2, "events": 0, "stale": 1, "gaps": 1}
    assert [m["seq"] for m in passed] == [1, 2, 3]  # the server did send seq 2
    expect(you).to_have_text("You are #1")  # the replayed snapshot changed nothing
    assert tab.errors == []
