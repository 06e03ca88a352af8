"""``/ws``: one socket, many subscriptions (issue 15), the app in-process over raw ASGI messages.

Every client message and every error; the snapshot, then updates only when that view changes,
with the subscription's own ``seq``; unsubscribe; the limits; a ``me`` view's token checked and
never echoed; ``me`` events; a manual rollover's new snapshots."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from scoreboard.subscriptions import SUBSCRIPTIONS_MAX
from tests.api.conftest import Api, ApiFactory
from tests.support import live_frames
from tests.support.timing import scaled
from tests.support.tokens import token

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "boards.toml"


class Socket:
    """A ``/ws`` client speaking raw ASGI to the app (no server: the plain ``send_text`` path)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.sent_texts: list[str] = []
        self.paused = asyncio.Event()
        """Cleared: the client does not read (the app's sends wait)."""
        self.paused.set()

    async def _put(self, message: dict[str, Any]) -> None:
        await self.paused.wait()
        await self.outgoing.put(message)

    async def open(self) -> None:
        await self.incoming.put({"type": "websocket.connect"})
        scope = {
            "type": "websocket",
            "path": "/ws",
            "raw_path": b"/ws",
            "query_string": b"",
            "headers": [(b"host", b"test")],
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 80),
            "scheme": "ws",
            "subprotocols": [],
            "extensions": {"websocket.http.response": {}},
        }
        self.task = asyncio.create_task(self.api.app(scope, self.incoming.get, self._put))
        accepted = await asyncio.wait_for(self.outgoing.get(), scaled(5))
        assert accepted["type"] == "websocket.accept", accepted

    async def send(self, message: dict[str, Any] | str) -> None:
        text = message if isinstance(message, str) else orjson.dumps(message).decode()
        await self.incoming.put({"type": "websocket.receive", "text": text})

    async def raw(self, within: float = 5) -> dict[str, Any]:
        message = await asyncio.wait_for(self.outgoing.get(), scaled(within))
        if message["type"] == "websocket.send":
            live_frames.check("/ws", message["text"])
        return message

    async def receive(self, within: float = 5) -> dict[str, Any]:
        message = await self.raw(within)
        assert message["type"] == "websocket.send", message
        self.sent_texts.append(message["text"])
        result: dict[str, Any] = orjson.loads(message["text"])
        return result

    async def nothing(self, within: float = 0.3) -> None:
        """No message arrives within ``within`` seconds (after everything in flight settled)."""
        with contextlib.suppress(TimeoutError):
            message = await asyncio.wait_for(self.outgoing.get(), within)
            raise AssertionError(f"unexpected message: {message}")

    async def subscribe(self, **fields: Any) -> dict[str, Any]:
        await self.send({"type": "subscribe", **fields})
        return await self.receive()

    async def close(self) -> None:
        await self.incoming.put({"type": "websocket.disconnect", "code": 1000})
        if self.task is not None:
            await asyncio.wait_for(self.task, scaled(5))


@contextlib.asynccontextmanager
async def connected(api: Api) -> AsyncIterator[Socket]:
    socket = Socket(api)
    await socket.open()
    try:
        yield socket
    finally:
        with contextlib.suppress(Exception):
            await socket.close()


async def settle(api: Api) -> None:
    """Until the views have taken every move published so far."""
    views = api.app.state.components.views
    for _ in range(200):
        await asyncio.sleep(0.005)
        workers = [b.worker for b in views._boards.values() if b.worker is not None]
        if not workers and all(not b.work for b in views._boards.values()):
            return
    raise AssertionError("the views never settled")


def users(rows: list[dict[str, Any]]) -> list[tuple[int, str, int]]:
    return [(r["rank"], r["user_id"], r["score"]) for r in rows]


async def test_a_top_view_snapshot_then_updates_with_its_own_seq(seeded: Api) -> None:
    async with connected(seeded) as ws:
        snapshot = await ws.subscribe(id="s1", board="main", view="top", limit=2)
        assert snapshot == {
            "type": "snapshot",
            "id": "s1",
            "board": "main",
            "period": "all",
            "seq": 1,
            "rows": [
                {"rank": 1, "user_id": "bob", "username": "bob", "score": 30},
                {"rank": 2, "user_id": "carol", "username": "carol", "score": 20},
            ],
        }
        await seeded.ok("alice", 15)  # 25: second
        update = await ws.receive()
        assert update["type"] == "update"
        assert update["seq"] == 2
        assert users(update["rows"]) == [(1, "bob", 30), (2, "alice", 25)]
        await seeded.ok("dave", 1)  # fourth: not in this view
        await settle(seeded)
        await ws.nothing()
        await seeded.ok("dave", 100)
        update = await ws.receive()
        assert update["seq"] == 3
        assert users(update["rows"]) == [(1, "dave", 101), (2, "bob", 30)]


async def test_an_around_view_changes_only_when_a_row_in_it_changes(api: Api) -> None:
    for i in range(30):  # u00 has 300 ... u29 has 10
        await api.ok(f"u{i:02d}", 300 - 10 * i)
    async with connected(api) as ws:
        snapshot = await ws.subscribe(id="a", board="main", view="around", user_id="u20", radius=2)
        assert users(snapshot["rows"]) == [
            (19, "u18", 120),
            (20, "u19", 110),
            (21, "u20", 100),
            (22, "u21", 90),
            (23, "u22", 80),
        ]
        # Moves far above (ranks 2..5) and far below (28..30) leave the window alone.
        await api.ok("u04", 100)  # 260 -> 360: from rank 5 to rank 1
        await api.ok("u29", 5)  # 10 -> 15: stays at 30
        await api.ok("u27", 2)
        await settle(api)
        await ws.nothing()
        # A row inside it changes: its score.
        await api.ok("u22", 5)  # 80 -> 85, still 23rd
        update = await ws.receive()
        assert update["type"] == "update"
        assert update["seq"] == 2
        assert users(update["rows"])[-1] == (23, "u22", 85)
        # Someone from below jumps into it: the window shifts by one.
        await api.ok("u28", 95)  # 20 -> 115: rank 20
        update = await ws.receive()
        assert update["seq"] == 3
        assert users(update["rows"]) == [
            (20, "u28", 115),
            (21, "u19", 110),
            (22, "u20", 100),
            (23, "u21", 90),
            (24, "u22", 85),
        ]
        await ws.nothing()


async def test_an_around_view_of_an_unranked_user_fills_when_they_are_ranked(api: Api) -> None:
    await api.ok("alice", 10)
    async with connected(api) as ws:
        snapshot = await ws.subscribe(id="a", board="main", view="around", user_id="zed", radius=1)
        assert snapshot["rows"] == []
        assert snapshot["seq"] == 1
        await api.ok("bob", 3)  # the board changes, zed is still not on it
        await settle(api)
        await ws.nothing()
        await api.ok("zed", 5)
        update = await ws.receive()
        assert users(update["rows"]) == [(1, "alice", 10), (2, "zed", 5), (3, "bob", 3)]


async def test_a_me_view_shows_the_tokens_user_and_never_echoes_the_token(api: Api) -> None:
    secret_token = token("alice")
    async with connected(api) as ws:
        snapshot = await ws.subscribe(id="m", board="main", view="me", auth_token=secret_token)
        assert snapshot["rows"] == []
        await api.ok("alice", 7)
        update = await ws.receive()
        assert users(update["rows"]) == [(1, "alice", 7)]
        events = [await ws.receive(), await ws.receive()]
        assert [e["event"] for e in events] == ["rank_changed", "entered_top"]
        assert events[0] == {
            "type": "event",
            "id": "m",
            "event": "rank_changed",
            "board": "main",
            "period": "all",
            "rank": 1,
            "score": 7,
            "by": None,
        }
        await ws.send({"type": "subscribe", "id": "bad", "board": "main", "view": "me",
                       "auth_token": secret_token[:-4] + "AAAA"})  # fmt: skip
        error = await ws.receive()
        assert error["type"] == "error"
        assert error["id"] == "bad"
    assert all(secret_token not in text for text in ws.sent_texts)
    assert all(secret_token[-30:] not in text for text in ws.sent_texts)


async def test_me_events_overtaken_by_whom_and_the_top_10(api: Api) -> None:
    for i in range(10):  # t0 100 ... t9 10
        await api.ok(f"t{i}", 100 - 10 * i)
    await api.ok("me", 5)  # rank 11
    async with connected(api) as ws:
        snapshot = await ws.subscribe(id="m", board="main", view="me", auth_token=token("me"))
        assert users(snapshot["rows"]) == [(11, "me", 5)]
        await api.ok("me", 10)  # 15: rank 10, past t9
        assert users((await ws.receive())["rows"]) == [(10, "me", 15)]
        got = [await ws.receive(), await ws.receive()]
        assert [(e["event"], e["rank"], e["score"]) for e in got] == [
            ("rank_changed", 10, 15),
            ("entered_top", 10, 15),
        ]
        await api.ok("rival", 16, name="The Rival")  # a new user straight past me
        assert users((await ws.receive())["rows"]) == [(11, "me", 15)]
        got = [await ws.receive(), await ws.receive()]
        assert got[0]["event"] == "overtaken"
        assert got[0]["rank"] == 11
        assert got[0]["by"] == {"user_id": "rival", "username": "The Rival", "score": 16}
        assert (got[1]["event"], got[1]["rank"]) == ("left_top", 11)
        await api.ok("t0", 1)  # above me, still above me: my rank holds
        await settle(api)
        await ws.nothing()


async def test_unsubscribe_stops_the_view(seeded: Api) -> None:
    async with connected(seeded) as ws:
        await ws.subscribe(id="s1", board="main", view="top", limit=3)
        await ws.send({"type": "unsubscribe", "id": "s1"})
        await ws.send({"type": "unsubscribe", "id": "s1"})
        error = await ws.receive()
        assert error == {
            "type": "error",
            "id": "s1",
            "error": "unknown_subscription",
            "message": "there is no subscription with this id",
        }
        await seeded.ok("zed", 1000)
        await settle(seeded)
        await ws.nothing()
        assert seeded.app.state.components.views.count() == 0
        again = await ws.subscribe(id="s1", board="main", view="top", limit=3)
        assert again["type"] == "snapshot"
        assert again["seq"] == 1


@pytest.mark.parametrize(
    ("message", "sub_id", "code"),
    [
        ("{not json", None, "invalid_json"),
        ("[1, 2]", None, "invalid_json"),
        ({"type": "subscribe", "board": "main", "view": "top"}, None, "invalid_id"),
        ({"type": "subscribe", "id": 5, "board": "main", "view": "top"}, None, "invalid_id"),
        ({"type": "subscribe", "id": "x" * 65, "board": "main", "view": "top"}, None, "invalid_id"),
        ({"type": "hello", "id": "s"}, "s", "invalid_type"),
        ({"type": "subscribe", "id": "s", "board": "nope", "view": "top"}, "s", "unknown_board"),
        ({"type": "subscribe", "id": "s", "board": "../x", "view": "top"}, "s", "invalid_board"),
        ({"type": "subscribe", "id": "s", "view": "top"}, "s", "invalid_board"),
        ({"type": "subscribe", "id": "s", "board": "main", "view": "all"}, "s", "invalid_view"),
        ({"type": "subscribe", "id": "s", "board": "main"}, "s", "invalid_view"),
        ({"type": "subscribe", "id": "s", "board": "main", "view": "top", "limit": 0}, "s",
         "invalid_limit"),
        ({"type": "subscribe", "id": "s", "board": "main", "view": "top", "limit": 101}, "s",
         "invalid_limit"),
        ({"type": "subscribe", "id": "s", "board": "main", "view": "top", "limit": "5"}, "s",
         "invalid_limit"),
        ({"type": "subscribe", "id": "s", "board": "main", "view": "top", "limit": True}, "s",
         "invalid_limit"),
        ({"type": "subscribe", "id": "s", "board": "main", "view": "around", "user_id": "a",
          "radius": 26}, "s", "invalid_radius"),
        ({"type": "subscribe", "id": "s", "board": "main", "view": "around", "user_id": "a",
          "radius": 0}, "s", "invalid_radius"),
        ({"type": "subscribe", "id": "s", "board": "main", "view": "around", "user_id": "a b"},
         "s", "invalid_user_id"),
        ({"type": "subscribe", "id": "s", "board": "main", "view": "me"}, "s", "token_missing"),
        ({"type": "subscribe", "id": "s", "board": "main", "view": "me", "auth_token": "x.y"},
         "s", "token_invalid"),
        ({"type": "unsubscribe", "id": "s"}, "s", "unknown_subscription"),
    ],
)  # fmt: skip
async def test_every_bad_message_is_an_error_message_not_a_close(
    api: Api, message: dict[str, Any] | str, sub_id: str | None, code: str
) -> None:
    async with connected(api) as ws:
        await ws.send(message)
        error = await ws.receive()
        assert set(error) == {"type", "id", "error", "message"}
        assert (error["type"], error["id"], error["error"]) == ("error", sub_id, code)
        assert error["message"]
        ok = await ws.subscribe(id="after", board="main", view="top")  # the socket still works
        assert ok["type"] == "snapshot"


async def test_tokens_refused_for_a_me_view(api: Api) -> None:
    from scoreboard.auth.mint import mint
    from scoreboard.auth.verify import Grant
    from tests.support.server import SECRET

    grant = mint(SECRET.encode(), "alice", grant=Grant(5, "a1"))
    cases = {
        "expired": (token("alice", ttl=-100), "token_expired"),
        "grant": (grant, "grant_not_accepted"),
        "forged": (token("alice", secret="another secret, at least 32 bytes!"), "token_invalid"),
    }
    async with connected(api) as ws:
        for name, (bad, _) in cases.items():
            await ws.send({"type": "subscribe", "id": name, "board": "main", "view": "me",
                           "auth_token": bad})  # fmt: skip
            error = await ws.receive()
            assert error["type"] == "error"
            assert error["id"] == name
            assert error["error"].startswith(("token_", "grant_")), error
            assert bad not in error["message"]
    assert api.app.state.components.views.count() == 0


async def test_at_most_20_subscriptions_and_ids_are_unique(seeded: Api) -> None:
    async with connected(seeded) as ws:
        for i in range(SUBSCRIPTIONS_MAX):
            got = await ws.subscribe(id=f"s{i}", board="main", view="top", limit=i + 1)
            assert got["type"] == "snapshot"
        error = await ws.subscribe(id="one-more", board="main", view="top")
        assert (error["error"], error["id"]) == ("too_many_subscriptions", "one-more")
        error = await ws.subscribe(id="s3", board="main", view="top")
        assert error["error"] in ("duplicate_id", "too_many_subscriptions")
        await ws.send({"type": "unsubscribe", "id": "s0"})
        error = await ws.subscribe(id="s3", board="main", view="top")
        assert error["error"] == "duplicate_id"
        got = await ws.subscribe(id="s0", board="main", view="around", user_id="bob", radius=25)
        assert got["type"] == "snapshot"


async def test_sockets_share_a_view_but_not_its_seq(seeded: Api) -> None:
    async with connected(seeded) as one, connected(seeded) as two:
        await one.subscribe(id="x", board="main", view="top", limit=3)
        await seeded.ok("alice", 100)
        assert (await one.receive())["seq"] == 2
        shared = await two.subscribe(id="y", board="main", view="top", limit=3)
        assert shared["seq"] == 1
        assert users(shared["rows"])[0] == (1, "alice", 110)
        assert seeded.app.state.components.views.count() == 1
        await seeded.ok("carol", 100)
        assert ((await one.receive())["seq"], (await two.receive())["seq"]) == (3, 2)


async def test_a_manual_rollover_sends_every_view_a_new_snapshot(make_api: ApiFactory) -> None:
    async with make_api(boards=EXAMPLE) as api, connected(api) as ws:
        await api.ok("alice", 10)
        await api.ok("bob", 5)
        top = await ws.subscribe(id="t", board="season", view="top", limit=5)
        around = await ws.subscribe(id="a", board="season", view="around", user_id="bob", radius=1)
        me = await ws.subscribe(id="m", board="season", view="me", auth_token=token("bob"))
        await ws.subscribe(id="o", board="main", view="top")
        assert users(around["rows"]) == [(1, "alice", 10), (2, "bob", 5)]
        assert users(me["rows"]) == [(2, "bob", 5)]
        old = top["period"]
        service = api.app.state.components.service
        _, opened = await service.rollover("season")
        got = {m["id"]: m for m in [await ws.receive(), await ws.receive(), await ws.receive()]}
        assert set(got) == {"t", "a", "m"}
        for sub_id, message in got.items():
            assert message["type"] == "snapshot", message
            assert message["period"] == opened.id != old
            assert message["rows"] == []
            assert message["seq"] == 2, sub_id
        await settle(api)
        await ws.nothing()  # the main board's view did not change
        await api.ok("bob", 1)  # the first of the new season (and 6 on main)
        got: dict[str, list[dict[str, Any]]] = {}
        for _ in range(6):
            message = await ws.receive()
            got.setdefault(message["id"], []).append(message)
        await ws.nothing()
        assert [(m["type"], users(m["rows"])) for m in got["t"]] == [("update", [(1, "bob", 1)])]
        assert [(m["type"], users(m["rows"])) for m in got["a"]] == [("update", [(1, "bob", 1)])]
        assert [m.get("event") for m in got["m"]] == [None, "rank_changed", "entered_top"]
        assert all(m["period"] == opened.id for m in [*got["t"], *got["a"], *got["m"]])
        assert [(m["period"], users(m["rows"])) for m in got["o"]] == [
            ("all", [(1, "alice", 10), (2, "bob", 6)])
        ]


async def test_events_overflowing_the_queue_close_the_socket_with_1013(api: Api) -> None:
    from scoreboard.subscriptions import Outbox

    async with connected(api) as ws:
        await ws.subscribe(id="m", board="main", view="me", auth_token=token("me"))
        outbox: Outbox = next(iter(api.app.state.farewell.sockets))
        outbox.max_messages = 4
        ws.paused.clear()  # the client stops reading: the app's next send blocks
        for i in range(6):  # each round: my rank changes, then someone overtakes me
            await api.ok("me", 1)
            await api.ok(f"r{i}", 100 + i)
            await settle(api)
        assert outbox.overflowed
        ws.paused.set()
        while (message := await ws.raw())["type"] != "websocket.close":
            assert message["type"] == "websocket.send"
        assert message["code"] == 1013


async def test_a_slow_socket_never_delays_another_and_gets_the_newest_state(seeded: Api) -> None:
    async with connected(seeded) as slow, connected(seeded) as quick:
        await slow.subscribe(id="s", board="main", view="top", limit=3)
        await quick.subscribe(id="q", board="main", view="top", limit=3)
        slow.paused.clear()  # stops reading
        for i in range(5):
            await seeded.ok("alice", 10 + i)
            update = await quick.receive()
            assert update["seq"] == 2 + i
        slow.paused.set()
        first = await slow.receive()  # the one send that was under way when it stopped
        assert first["seq"] == 2
        newest = await slow.receive()
        assert newest["seq"] == 6  # 3..5 were coalesced away: the gap says so
        assert newest["rows"][0] == {"rank": 1, "user_id": "alice", "username": "Alice",
                                     "score": 10 + sum(10 + i for i in range(5))}  # fmt: skip
        await slow.nothing()
