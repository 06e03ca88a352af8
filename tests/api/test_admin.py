"""The admin API (``/api/admin``) in-process on a SQLite file, on the example boards: who may
call it, every action and its undo as the public reads see them, and every refusal, which
changes nothing."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from scoreboard.auth.mint import mint
from scoreboard.auth.verify import Grant
from scoreboard.web.guards.admin import key_hash, new_key
from tests.api.conftest import UPDATE, Api, ApiFactory, assert_error
from tests.support.server import SECRET
from tests.support.tokens import token

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "boards.toml"
REASON = {"reason": "cheating, ticket #12"}


class Admin:
    def __init__(self, api: Api, key: str) -> None:
        self.api = api
        self.headers = {"Authorization": f"Bearer {key}"}

    async def call(
        self, method: str, path: str, body: Any = None, status: int = 200, **params: Any
    ) -> Any:
        response = await self.api.client.request(
            method, "/api/admin" + path, json=body, headers=self.headers, params=params
        )
        assert response.status_code == status, response.text
        assert response.headers["cache-control"] == "no-store"
        return response.json()

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, **params)

    async def post(self, path: str, body: Any = None, status: int = 200) -> Any:
        return await self.call("POST", path, REASON if body is None else body, status)


async def make_key(api: Api, name: str = "ops") -> str:
    key = new_key()
    await api.app.state.components.store.add_key(name, key_hash(key))
    return key


@pytest.fixture
async def admin(make_api: ApiFactory) -> AsyncIterator[Admin]:
    async with make_api(boards=EXAMPLE) as api:
        yield Admin(api, await make_key(api))


async def public(api: Api, path: str) -> Any:
    return (await api.client.get(path)).json()


async def top(api: Api, board: str = "main") -> list[tuple[str, int]]:
    answer = await public(api, f"/api/boards/{board}/top10")
    return [(e["user_id"], e["score"]) for e in answer["scores"]]


async def event_ids(admin: Admin, user: str) -> list[int]:
    return [e["event_id"] for e in (await admin.get(f"/users/{user}/events"))["events"]]


# -- who may call it ---------------------------------------------------------------------------

ROUTES = [
    ("GET", "/api/admin/users/alice", None),
    ("GET", "/api/admin/users/alice/events", None),
    ("GET", "/api/admin/audit", None),
    ("POST", "/api/admin/events/1/void", REASON),
    ("POST", "/api/admin/events/1/restore", REASON),
    ("POST", "/api/admin/users/alice/adjust", {"delta": 5, "action_id": "a", "reason": "r"}),
    ("POST", "/api/admin/users/alice/rename", {"username": "A", "reason": "r"}),
    ("POST", "/api/admin/users/alice/unlock-name", REASON),
    ("POST", "/api/admin/users/alice/hide", REASON),
    ("POST", "/api/admin/users/alice/unhide", REASON),
    ("POST", "/api/admin/users/alice/ban", REASON),
    ("POST", "/api/admin/users/alice/unban", REASON),
    ("DELETE", "/api/admin/users/alice", REASON),
    ("POST", "/api/admin/boards/season/rollover", REASON),
]


async def test_every_route_refuses_anything_but_a_live_admin_key_alike(
    make_api: ApiFactory,
) -> None:
    async with make_api(boards=EXAMPLE, admin_auth_limit="") as api:
        await api.ok("alice", 10)
        revoked = await make_key(api, "old")
        await api.app.state.components.store.revoke_key("old")
        credentials = {
            "none": None,
            "not bearer": f"Basic {revoked}",
            "unknown key": f"Bearer {new_key()}",
            "revoked key": f"Bearer {revoked}",
            "truncated key": f"Bearer {revoked[:20]}",
            "user token": f"Bearer {token('alice')}",
            "grant": f"Bearer {mint(SECRET.encode(), 'alice', grant=Grant(5, 'g1'))}",
        }
        before = await api.state()
        bodies = set()
        for method, path, body in ROUTES:
            for what, header in credentials.items():
                headers = {} if header is None else {"Authorization": header}
                response = await api.client.request(method, path, json=body, headers=headers)
                error = assert_error(response, 401)
                assert response.headers["cache-control"] == "no-store", (path, what)
                bodies.add(tuple(sorted(error.items())))
        assert len(bodies) == 1  # nothing tells which keys exist or existed
        assert await api.state() == before


async def test_failed_authentications_are_limited_per_address(make_api: ApiFactory) -> None:
    async with make_api(boards=EXAMPLE, admin_auth_limit="3/minute") as api:
        key = await make_key(api)
        good = {"Authorization": f"Bearer {key}"}
        for _ in range(5):  # successes do not count
            assert (await api.client.get("/api/admin/audit", headers=good)).status_code == 200
        bad = {"Authorization": f"Bearer {new_key()}"}
        for _ in range(3):
            assert_error(await api.client.get("/api/admin/audit", headers=bad), 401)
        refused = await api.client.get("/api/admin/audit", headers=good)
        assert assert_error(refused, 429)["error"] == "rate_limited_admin"
        assert int(refused.headers["retry-after"]) > 0
        # Public routes are not concerned.
        assert (await api.client.get("/api/boards")).status_code == 200


async def test_an_address_outside_the_allowed_ones_is_403_before_its_key(
    make_api: ApiFactory,
) -> None:
    async with make_api(admin_allowed_ips="10.0.0.0/8, 192.168.1.7") as api:
        key = await make_key(api)
        for header in ({"Authorization": f"Bearer {key}"}, {}):
            response = await api.client.get("/api/admin/audit", headers=header)
            assert assert_error(response, 403)["error"] == "address_not_allowed"
    async with make_api(admin_allowed_ips="127.0.0.0/8") as api:
        key = await make_key(api)
        ok = await api.client.get("/api/admin/audit", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200


# -- reads -------------------------------------------------------------------------------------


async def test_a_user_on_every_board_and_their_events_newest_first(admin: Admin) -> None:
    api = admin.api
    await api.ok("alice", 30, name="Alice")
    await api.ok("bob", 50)
    await api.client.post(
        UPDATE,
        json={
            "user_id": "alice",
            "score_delta": 61_000,
            "metric": "lap_ms",
            "auth_token": token("alice"),
        },
    )
    view = await admin.get("/users/alice")
    assert (view["user_id"], view["username"], view["status"], view["name_locked"]) == (
        "alice",
        "Alice",
        "active",
        False,
    )
    places = {b["board"]: (b["score"], b["rank"]) for b in view["boards"]}
    assert places["main"] == (30, 2)
    assert places["fastest-lap"] == (61_000, 1)
    assert view["boards"][0]["board"] == "main"  # the default board first
    page = await admin.get("/users/alice/events", limit=1)
    (latest,) = page["events"]
    assert (latest["metric"], latest["delta"], latest["source"], latest["voided"]) == (
        "lap_ms",
        61_000,
        "user",
        False,
    )
    rest = await admin.get("/users/alice/events", limit=5, before=page["next"])
    assert [e["delta"] for e in rest["events"]] == [30]
    assert rest["next"] is None
    assert_error(await api.client.get("/api/admin/users/nobody", headers=admin.headers), 404)


# -- voids ---------------------------------------------------------------------------------


async def test_a_void_takes_an_event_off_every_board_and_a_restore_puts_it_back(
    admin: Admin,
) -> None:
    api = admin.api
    await api.ok("alice", 30)
    await api.ok("bob", 900)
    boards = {b: await top(api, b) for b in ("main", "weekly", "today", "season")}
    (bad,) = await event_ids(admin, "bob")
    done = await admin.post(f"/events/{bad}/void")
    assert done == {"event_id": bad, "voided": True, "changed": True}
    for board in boards:
        assert await top(api, board) == [("alice", 30)], board
    assert (await public(api, "/api/users/bob/history"))["events"] == []
    assert (await admin.post(f"/events/{bad}/void"))["changed"] is False
    assert (await admin.post(f"/events/{bad}/restore"))["changed"] is True
    assert {b: await top(api, b) for b in boards} == boards
    actions = [e["action"] for e in (await admin.get("/audit"))["entries"]]
    assert actions == ["restore", "void"]  # the no-op void is not recorded
    assert_error(
        await api.client.post("/api/admin/events/999/void", json=REASON, headers=admin.headers),
        404,
    )


# -- adjustments ---------------------------------------------------------------------------


async def test_an_adjustment_counts_on_sums_once(admin: Admin) -> None:
    api = admin.api
    await api.ok("alice", 30)
    body = {"delta": -12, "action_id": "fix-1", "reason": "double-counted level"}
    answer = await admin.post("/users/alice/adjust", body)
    assert (answer["new_score"], answer["boards"]["weekly"]["score"]) == (18, 18)
    assert (await admin.post("/users/alice/adjust", body))["new_score"] == 18  # a retry
    lap = {"metric": "lap_ms", "delta": -1000, "action_id": "fix-2", "reason": "r"}
    assert (await admin.post("/users/alice/adjust", lap))["boards"] == {}  # best boards: no
    events = (await admin.get("/users/alice/events"))["events"]
    assert [(e["delta"], e["source"]) for e in events] == [
        (-1000, "admin"),
        (-12, "admin"),
        (30, "user"),
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"delta": 0, "action_id": "x", "reason": "r"},
        {"delta": "5", "action_id": "x", "reason": "r"},
        {"delta": 5.5, "action_id": "x", "reason": "r"},
        {"delta": 2**31, "action_id": "x", "reason": "r"},
        {"delta": 5, "reason": "r"},
        {"delta": 5, "action_id": "", "reason": "r"},
        {"delta": 5, "action_id": "x\u200b", "reason": "r"},
        {"delta": 5, "action_id": "x"},
        {"delta": 5, "action_id": "x", "reason": ""},
        {"delta": 5, "action_id": "x", "reason": "   "},
        {"delta": 5, "action_id": "x", "reason": "r" * 501},
        {"delta": 5, "action_id": "x", "reason": 5},
        {"delta": 5, "action_id": "x", "reason": "r", "extra": 1},
        {"delta": 5, "action_id": "x", "reason": "r", "metric": "coins"},
        {"delta": 5, "action_id": "x", "reason": "r", "metric": "Points"},
        [1, 2],
        "text",
    ],
)
async def test_a_bad_adjustment_is_400_and_changes_nothing(admin: Admin, body: Any) -> None:
    api = admin.api
    await api.ok("alice", 30)
    before = await api.state()
    await admin.call("POST", "/users/alice/adjust", body, 400)
    assert await api.state() == before
    assert (await admin.get("/audit"))["entries"] == []


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "r", "why": "x"}, None])
@pytest.mark.parametrize("action", ["hide", "ban", "unlock-name"])
async def test_an_action_without_a_good_reason_is_400_and_changes_nothing(
    admin: Admin, body: Any, action: str
) -> None:
    api = admin.api
    await api.ok("alice", 30)
    before = await api.state()
    await admin.call("POST", f"/users/alice/{action}", body, 400)
    assert await api.state() == before


# -- hide, ban, rename -----------------------------------------------------------------------


async def test_a_hidden_user_disappears_from_every_public_read(admin: Admin) -> None:
    api = admin.api
    for user, delta in [("alice", 50), ("bob", 30), ("carol", 10)]:
        await api.ok(user, delta)
    assert (await admin.post("/users/alice/hide")) == {
        "user_id": "alice",
        "status": "hidden",
        "changed": True,
    }
    assert await top(api) == [("bob", 30), ("carol", 10)]
    assert (await public(api, "/api/scores/top10"))["scores"][0]["rank"] == 1
    assert_error(await api.client.get("/api/users/alice"), 404)
    assert_error(await api.client.get("/api/boards/weekly/users/alice"), 404)
    assert (await public(api, "/api/users/carol"))["rank"] == 2  # the ranks close up
    assert (await public(api, "/api/users/alice/history"))["events"] == []
    assert (await public(api, "/api/scores"))["total"] == 2
    # Their updates still count; their own answers carry no rank.
    answer = await api.ok("alice", 5)
    assert (answer["new_score"], answer["rank"]) == (55, None)
    assert {place["rank"] for place in answer["boards"].values()} == {None}
    assert (await admin.post("/users/alice/unhide"))["status"] == "active"
    assert await top(api) == [("alice", 55), ("bob", 30), ("carol", 10)]


async def test_a_banned_users_updates_are_403_and_change_nothing(make_api: ApiFactory) -> None:
    async with make_api(boards=EXAMPLE, rate_limit_user="2/minute") as api:
        admin = Admin(api, await make_key(api))
        await api.ok("alice", 50, action_id="a1")
        await api.ok("alice", 5, action_id="a2")  # the user limit is spent now
        await admin.post("/users/alice/ban")
        before = await api.state()
        for kwargs in ({"action_id": "a3"}, {"action_id": "a1"}):  # new, and a replay
            response = await api.update("alice", 50 if kwargs["action_id"] == "a1" else 7, **kwargs)
            assert assert_error(response, 403)["error"] == "banned"  # not the 429
        assert await api.state() == before
        assert await top(api) == []
        await admin.post("/users/alice/unban")
        assert await top(api) == [("alice", 55)]


async def test_a_rename_replaces_the_name_everywhere_and_holds(admin: Admin) -> None:
    api = admin.api
    await api.ok("alice", 50, name="Rude Name")
    body = {"username": "Player 7", "reason": "offensive name"}
    assert (await admin.post("/users/alice/rename", body))["changed"] is True
    assert (await public(api, "/api/scores/top10"))["scores"][0]["username"] == "Player 7"
    await api.ok("alice", 1, name="Rude Again")
    assert (await public(api, "/api/users/alice"))["username"] == "Player 7"
    await admin.post("/users/alice/unlock-name")
    await api.ok("alice", 1, name="Alice")
    assert (await public(api, "/api/users/alice"))["username"] == "Alice"


# -- erasure ---------------------------------------------------------------------------------


def every_value(database: Path) -> list[tuple[str, str, Any]]:
    """Every value of every column of every table of the SQLite file."""
    found = []
    with contextlib.closing(sqlite3.connect(database)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            cursor = conn.execute(f'SELECT * FROM "{table}"')  # noqa: S608
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                found += [(table, c, v) for c, v in zip(columns, row, strict=True)]
    return found


async def test_an_erased_user_is_gone_from_every_table(admin: Admin) -> None:
    api = admin.api
    await api.ok("zed-erased", 50, name="Zed Secret")
    await api.client.post(
        UPDATE,
        json={
            "user_id": "zed-erased",
            "score_delta": 61_000,
            "metric": "lap_ms",
            "auth_token": token("zed-erased"),
        },
    )
    await api.ok("bob", 20)
    await admin.post("/users/zed-erased/hide")
    (_lap, points) = await event_ids(admin, "zed-erased")
    await admin.post(f"/events/{points}/void")
    await admin.post("/users/zed-erased/unhide")
    await admin.post("/boards/season/rollover")
    bad = {"reason": ""}
    await admin.call("DELETE", "/users/zed-erased", bad, 400)
    answer = await admin.call("DELETE", "/users/zed-erased", REASON)
    assert answer["erased"] is True
    hashed = answer["audit_target"]
    assert hashed.startswith("erased:")
    leftovers = [
        (t, c, v)
        for t, c, v in every_value(api.database)
        if isinstance(v, str) and ("zed-erased" in v or "Zed Secret" in v)
    ]
    assert leftovers == []
    assert await top(api) == [("bob", 20)]
    assert await top(api, "fastest-lap") == []
    assert_error(await api.client.get("/api/users/zed-erased"), 404)
    audit = (await admin.get("/audit"))["entries"]
    assert [e["target"] for e in audit if e["action"] in ("erase", "hide", "unhide")] == [
        hashed,
        hashed,
        hashed,
    ]
    assert_error(await api.client.get("/api/admin/users/zed-erased", headers=admin.headers), 404)
    # The same id later is a new user, from zero.
    assert (await api.ok("zed-erased", 3))["new_score"] == 3


# -- rollover and the audit ------------------------------------------------------------------


async def test_a_rollover_over_http_is_audited_and_refused_for_clock_boards(
    admin: Admin,
) -> None:
    api = admin.api
    await api.ok("alice", 10)
    answer = await admin.post("/boards/season/rollover")
    assert (answer["closed"]["id"], answer["opened"]["id"]) == ("1", "2")
    assert answer["opened"]["ends_at"] is None
    assert await top(api, "season") == []
    refused = await api.client.post(
        "/api/admin/boards/today/rollover", json=REASON, headers=admin.headers
    )
    assert assert_error(refused, 409)["error"] == "not_manual"
    for board, status in (("nope", 404), ("Nope", 400)):
        response = await api.client.post(
            f"/api/admin/boards/{board}/rollover", json=REASON, headers=admin.headers
        )
        assert_error(response, status)
    (entry,) = (await admin.get("/audit"))["entries"]
    assert (entry["action"], entry["target"], entry["key"], entry["reason"]) == (
        "rollover",
        "board:season",
        "ops",
        REASON["reason"],
    )
    assert entry["details"] == {"closed": "1", "opened": "2"}


async def test_the_audit_pages_newest_first(admin: Admin) -> None:
    api = admin.api
    for user in ("a", "b", "c"):
        await api.ok(user, 5)
        await admin.post(f"/users/{user}/hide")
    first = await admin.get("/audit", limit=2)
    assert [e["target"] for e in first["entries"]] == ["c", "b"]
    rest = await admin.get("/audit", limit=2, before=first["next"])
    assert [e["target"] for e in rest["entries"]] == ["a"]
    assert rest["next"] is None
    for params in ({"limit": 0}, {"limit": 101}, {"before": 0}, {"before": "x"}):
        response = await api.client.get("/api/admin/audit", params=params, headers=admin.headers)
        assert_error(response, 400)
