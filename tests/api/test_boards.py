"""Many boards over the HTTP API (issue 13), on the example configuration the repository ships
(``examples/boards.toml``): all time, this week and today in Berlin, a manual season, all fed by
``points``, and the fastest lap of the day (the lowest ``lap_ms``).

What one update does to every board of its metric, the per-board reads of current periods and
archives, the periods list and its paging, and the refusals: each bad parameter is the right
status and code and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scoreboard.auth.mint import mint
from scoreboard.auth.verify import Grant
from tests.api.conftest import UPDATE, Api, ApiFactory, assert_error
from tests.support.server import SECRET
from tests.support.tokens import token

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "boards.toml"
POINTS_BOARDS = {"main", "weekly", "today", "season"}
BOARD_PATHS = (
    "/api/boards/{b}",
    "/api/boards/{b}/top10",
    "/api/boards/{b}/scores",
    "/api/boards/{b}/users/alice",
    "/api/boards/{b}/users/alice/around",
    "/api/boards/{b}/periods",
)


@pytest.fixture
async def boards(make_api: ApiFactory) -> AsyncIterator[Api]:
    async with make_api(boards=EXAMPLE) as api:
        yield api


async def post(api: Api, user_id: str, delta: int, **fields: Any) -> Any:
    body = {"user_id": user_id, "score_delta": delta, "auth_token": token(user_id), **fields}
    return await api.client.post(UPDATE, json=body)


async def ok(api: Api, user_id: str, delta: int, **fields: Any) -> dict[str, Any]:
    response = await post(api, user_id, delta, **fields)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def get(api: Api, path: str, status: int = 200, **params: Any) -> Any:
    response = await api.client.get(path, params=params)
    assert response.status_code == status, response.text
    return response.json()


def today_in_berlin() -> str:
    return datetime.now(ZoneInfo("Europe/Berlin")).date().isoformat()


# -- the boards and their periods ----------------------------------------------------------------


async def test_every_board_is_listed_default_first_with_its_current_period(boards: Api) -> None:
    listed = (await get(boards, "/api/boards"))["boards"]
    assert [b["id"] for b in listed] == ["main", "fastest-lap", "season", "today", "weekly"]
    by_id = {b["id"]: b for b in listed}
    assert by_id["main"] == {
        "id": "main",
        "title": "All time",
        "metric": "points",
        "aggregate": "sum",
        "order": "desc",
        "reset": "never",
        "timezone": "UTC",
        "period": {"id": "all", "starts_at": None, "ends_at": None},
    }
    lap = by_id["fastest-lap"]
    assert (lap["metric"], lap["aggregate"], lap["order"]) == ("lap_ms", "best", "asc")
    assert by_id["season"]["period"] == {
        "id": "1",
        "starts_at": by_id["season"]["period"]["starts_at"],
        "ends_at": None,
    }
    # Today in Berlin: from local midnight to the next, written in UTC; 23, 24 or 25 hours.
    today = by_id["today"]["period"]
    assert today["id"] == today_in_berlin()
    starts = datetime.fromisoformat(today["starts_at"])
    ends = datetime.fromisoformat(today["ends_at"])
    assert today["starts_at"].endswith("Z")
    assert today["ends_at"].endswith("Z")
    local = starts.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute, local.date().isoformat()) == (0, 0, today["id"])
    assert ends - starts in {timedelta(hours=h) for h in (23, 24, 25)}
    week = by_id["weekly"]["period"]
    year, number, _ = datetime.now(ZoneInfo("Europe/Berlin")).isocalendar()
    assert week["id"] == f"{year}-W{number:02d}"
    assert (
        datetime.fromisoformat(week["starts_at"]).astimezone(ZoneInfo("Europe/Berlin")).weekday()
        == 0
    )
    assert await get(boards, "/api/boards/weekly") == by_id["weekly"]


async def test_the_seed_configuration_is_one_all_time_board(api: Api) -> None:
    listed = (await get(api, "/api/boards"))["boards"]
    assert [(b["id"], b["reset"], b["period"]["id"]) for b in listed] == [("main", "never", "all")]


# -- one update, every board of its metric -------------------------------------------------------


async def test_one_update_moves_the_user_on_every_board_of_its_metric(boards: Api) -> None:
    await ok(boards, "bob", 70)
    answer = await ok(boards, "alice", 50, action_id="a-1")
    day, week = today_in_berlin(), (await get(boards, "/api/boards/weekly"))["period"]["id"]
    assert answer == {
        "user_id": "alice",
        "new_score": 50,
        "rank": 2,
        "boards": {
            "main": {"period": "all", "score": 50, "rank": 2},
            "weekly": {"period": week, "score": 50, "rank": 2},
            "today": {"period": day, "score": 50, "rank": 2},
            "season": {"period": "1", "score": 50, "rank": 2},
        },
    }
    again = await ok(boards, "alice", 40, action_id="a-2")
    assert {b: p["score"] for b, p in again["boards"].items()} == dict.fromkeys(POINTS_BOARDS, 90)
    assert {b: p["rank"] for b, p in again["boards"].items()} == dict.fromkeys(POINTS_BOARDS, 1)
    for board in POINTS_BOARDS:
        top = await get(boards, f"/api/boards/{board}/top10")
        assert top["board"] == board
        assert [(e["user_id"], e["score"]) for e in top["scores"]] == [("alice", 90), ("bob", 70)]
    assert (await get(boards, "/api/boards/fastest-lap/top10"))["scores"] == []
    # One event stored, for the one update: boards are standings, not copies of the event.
    assert boards.rows("SELECT count(*) FROM scores WHERE user_id = 'alice'") == [(2,)]


async def test_a_best_of_board_keeps_the_lowest_time(boards: Api) -> None:
    first = await ok(boards, "alice", 61_000, metric="lap_ms")
    # The metric does not feed the default board: its figures are null, the others say where.
    assert first == {
        "user_id": "alice",
        "new_score": None,
        "rank": None,
        "boards": {
            "fastest-lap": {
                "period": first["boards"]["fastest-lap"]["period"],
                "score": 61_000,
                "rank": 1,
            }
        },
    }
    slower = await ok(boards, "alice", 65_000, metric="lap_ms")
    assert slower["boards"]["fastest-lap"]["score"] == 61_000
    bob = await ok(boards, "bob", 59_500, metric="lap_ms")
    assert bob["boards"]["fastest-lap"] == {**bob["boards"]["fastest-lap"], "rank": 1}
    carol = await ok(boards, "carol", 61_000, metric="lap_ms")
    top = await get(boards, "/api/boards/fastest-lap/top10")
    # Lowest first; alice reached 61,000 before carol did, so the tie is hers.
    assert [(e["user_id"], e["score"], e["rank"]) for e in top["scores"]] == [
        ("bob", 59_500, 1),
        ("alice", 61_000, 2),
        ("carol", 61_000, 3),
    ]
    assert carol["boards"]["fastest-lap"]["rank"] == 3
    assert (await get(boards, "/api/scores/top10"))["scores"] == []
    history = await get(boards, "/api/users/alice/history", metric="lap_ms")
    assert [e["delta"] for e in history["events"]] == [61_000, 65_000]  # oldest first
    assert (await get(boards, "/api/users/alice/history"))["events"] == []


async def test_idempotency_is_per_user_and_action_across_metrics(boards: Api) -> None:
    first = await ok(boards, "alice", 30, action_id="quest-1")
    await ok(boards, "bob", 50)
    before = await boards.state()
    # A retry answers with the current figures and adds nothing.
    replay = await ok(boards, "alice", 30, action_id="quest-1")
    assert replay == {
        **first,
        "rank": 2,
        "boards": {board: {**place, "rank": 2} for board, place in first["boards"].items()},
    }
    assert await boards.state() == before
    # The same key for an event of another metric is not a retry: 409, nothing added.
    for fields in ({"metric": "lap_ms"}, {"metric": "lap_ms", "score_delta": 30}):
        body = {
            "user_id": "alice",
            "score_delta": 45_000,
            "auth_token": token("alice"),
            "action_id": "quest-1",
            **fields,
        }
        error = assert_error(await boards.client.post(UPDATE, json=body), 409)
        assert error["error"] == "action_conflict", error
    assert await boards.state() == before
    assert (await get(boards, "/api/boards/fastest-lap/top10"))["scores"] == []
    # The key is the user's: another user may use it.
    assert (await ok(boards, "bob", 5, action_id="quest-1"))["new_score"] == 55


# -- refusals change nothing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"metric": "coins"}, "unknown_metric"),
        ({"metric": "Points"}, "invalid_metric"),
        ({"metric": ""}, "invalid_metric"),
        ({"metric": "x" * 65}, "invalid_metric"),
        ({"metric": 5}, "invalid_metric"),
        ({"metric": "lap_ms", "score_delta": 3_600_001}, "invalid_score_delta"),
        ({"metric": "lap_ms", "score_delta": 0}, "invalid_score_delta"),
        ({"metric": "lap_ms", "score_delta": -5}, "invalid_score_delta"),
        ({"score_delta": 1001}, "invalid_score_delta"),
    ],
)
async def test_a_bad_metric_or_delta_is_400_and_changes_nothing(
    boards: Api, fields: dict[str, Any], code: str
) -> None:
    await ok(boards, "alice", 10)
    await ok(boards, "alice", 70_000, metric="lap_ms")
    before = await boards.state()
    tops = {b: await get(boards, f"/api/boards/{b}/top10") for b in [*POINTS_BOARDS, "fastest-lap"]}
    body = {"user_id": "alice", "score_delta": 5, "auth_token": token("alice"), **fields}
    body["score_delta"] = fields.get("score_delta", 5)
    error = assert_error(await boards.client.post(UPDATE, json=body), 400)
    assert error["error"] == code, error
    assert await boards.state() == before
    for board, top in tops.items():
        assert await get(boards, f"/api/boards/{board}/top10") == top


async def test_a_grant_binds_its_metric(make_api: ApiFactory) -> None:
    async with make_api(auth_mode="grant", boards=EXAMPLE) as api:
        # 900 ms is in both metrics' ranges, so only the grant's metric can refuse it.
        lap = mint(SECRET.encode(), "alice", grant=Grant(900, "lap-1", "lap_ms"))
        before = await api.state()
        # Absent means points: a lap grant cannot be spent on points, nor the reverse.
        body = {"user_id": "alice", "score_delta": 900, "auth_token": lap}
        assert assert_error(await api.client.post(UPDATE, json=body), 401)["error"] == (
            "grant_mismatch"
        )
        points = mint(SECRET.encode(), "alice", grant=Grant(5, "p-1"))
        body = {"user_id": "alice", "score_delta": 5, "auth_token": points, "metric": "lap_ms"}
        assert assert_error(await api.client.post(UPDATE, json=body), 401)["error"] == (
            "grant_mismatch"
        )
        assert await api.state() == before
        answer = await ok(api, "alice", 900, metric="lap_ms", auth_token=lap)
        assert answer["boards"]["fastest-lap"]["score"] == 900
        assert answer["new_score"] is None


@pytest.mark.parametrize("board", ["Main", "a" * 65, "ma in", "main.", "%C3%A9"])
@pytest.mark.parametrize("path", BOARD_PATHS)
async def test_a_board_id_of_the_wrong_form_is_400(boards: Api, path: str, board: str) -> None:
    error = assert_error(await boards.client.get(path.format(b=board)), 400)
    assert error["error"] == "invalid_board", error


@pytest.mark.parametrize("path", BOARD_PATHS)
async def test_an_unknown_board_is_404(boards: Api, path: str) -> None:
    error = assert_error(await boards.client.get(path.format(b="monthly")), 404)
    assert error["error"] == "unknown_board", error


@pytest.mark.parametrize(
    ("board", "period", "status", "code"),
    [
        ("today", "2026-W49", 400, "invalid_period"),
        ("today", "2026-13-01", 400, "invalid_period"),
        ("today", "2026-02-30", 400, "invalid_period"),
        ("today", "all", 400, "invalid_period"),
        ("today", "2020-01-01", 404, "unknown_period"),
        ("weekly", "2026-11-30", 400, "invalid_period"),
        ("weekly", "2026-W54", 400, "invalid_period"),
        ("weekly", "2019-W01", 404, "unknown_period"),
        ("main", "1", 400, "invalid_period"),
        ("season", "0", 400, "invalid_period"),
        ("season", "all", 400, "invalid_period"),
        ("season", "2", 404, "unknown_period"),
        ("main", "ALL", 400, "invalid_period"),
    ],
)
@pytest.mark.parametrize("read", ["top10", "scores", "users/alice", "users/alice/around"])
async def test_a_period_of_the_wrong_form_is_400_and_an_unknown_one_404(
    boards: Api, board: str, period: str, status: int, code: str, read: str
) -> None:
    await ok(boards, "alice", 10)
    error = assert_error(
        await boards.client.get(f"/api/boards/{board}/{read}", params={"period": period}), status
    )
    assert error["error"] == code, error


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"before": "2026-W49"}, "invalid_period"),
        ({"before": "nope"}, "invalid_period"),
        ({"limit": 0}, "invalid_request"),
        ({"limit": 101}, "invalid_request"),
    ],
)
async def test_bad_periods_parameters_are_400(
    boards: Api, params: dict[str, Any], code: str
) -> None:
    error = assert_error(await boards.client.get("/api/boards/today/periods", params=params), 400)
    assert error["error"] == code, error


# -- reads per board and period ----------------------------------------------------------------


async def test_every_read_names_its_board_and_period(boards: Api) -> None:
    for user, delta in [("alice", 10), ("bob", 30), ("carol", 20)]:
        await ok(boards, user, delta)
    day = today_in_berlin()
    page = await get(boards, "/api/boards/today/scores", offset=1, limit=2)
    assert page == {
        "board": "today",
        "period": day,
        "scores": page["scores"],
        "total": 3,
        "offset": 1,
        "limit": 2,
    }
    assert [(e["user_id"], e["rank"]) for e in page["scores"]] == [("carol", 2), ("alice", 3)]
    user = await get(boards, "/api/boards/today/users/carol", period=day)
    assert (user["board"], user["period"], user["score"], user["rank"]) == ("today", day, 20, 2)
    around = await get(boards, "/api/boards/today/users/alice/around", radius=1)
    assert (around["board"], around["period"], around["rank"]) == ("today", day, 3)
    assert [e["user_id"] for e in around["scores"]] == ["carol", "alice"]
    top = await get(boards, "/api/boards/today/top10", period=day)
    assert (top["board"], top["period"]) == ("today", day)
    # The seed's endpoints are the default board's, with exactly the seed's shapes.
    assert set(await get(boards, "/api/scores/top10")) == {"scores"}
    seed_user = await get(boards, "/api/users/carol")
    assert "board" not in seed_user
    assert seed_user["rank"] == 2
    error = assert_error(await boards.client.get("/api/boards/today/users/dave"), 404)
    assert error["error"] == "unknown_user"


async def test_archives_stay_readable_after_a_rollover(boards: Api) -> None:
    service = boards.app.state.components.service
    await ok(boards, "alice", 10)
    await ok(boards, "bob", 30)
    closed, opened = await service.rollover("season")
    assert (closed.id, opened.id) == ("1", "2")
    await ok(boards, "alice", 5)
    # The current season has only what came after; season 1 is as it was.
    current = await get(boards, "/api/boards/season/top10")
    assert (current["period"], [(e["user_id"], e["score"]) for e in current["scores"]]) == (
        "2",
        [("alice", 5)],
    )
    archive = await get(boards, "/api/boards/season/top10", period="1")
    assert [(e["user_id"], e["score"], e["rank"]) for e in archive["scores"]] == [
        ("bob", 30, 1),
        ("alice", 10, 2),
    ]
    assert (await get(boards, "/api/boards/season/scores", period="1"))["total"] == 2
    alice = await get(boards, "/api/boards/season/users/alice", period="1")
    assert (alice["period"], alice["score"], alice["rank"]) == ("1", 10, 2)
    around = await get(boards, "/api/boards/season/users/bob/around", period="1", radius=2)
    assert [e["user_id"] for e in around["scores"]] == ["bob", "alice"]
    error = assert_error(await boards.client.get("/api/boards/season/users/bob"), 404)
    assert error["error"] == "unknown_user"
    # All time saw both.
    assert [e["score"] for e in (await get(boards, "/api/boards/main/top10"))["scores"]] == [30, 15]


async def test_rollover_of_a_board_that_resets_itself_is_refused(boards: Api) -> None:
    service = boards.app.state.components.service
    before = await boards.state()
    with pytest.raises(Exception, match="resets by itself"):
        await service.rollover("today")
    assert await boards.state() == before


async def test_periods_page_newest_first_with_entries_and_leader(boards: Api) -> None:
    service = boards.app.state.components.service
    for season in range(1, 6):
        await ok(boards, f"u{season}", 10 * season)
        await ok(boards, "alice", 1)
        await service.rollover("season")
    first = await get(boards, "/api/boards/season/periods", limit=2)
    assert [p["id"] for p in first["periods"]] == ["6", "5"]
    assert first["periods"][0]["entries"] == 0
    assert first["periods"][0]["leader"] is None
    assert first["periods"][0]["ends_at"] is None
    assert first["periods"][1]["entries"] == 2
    assert first["periods"][1]["leader"] == {"user_id": "u5", "username": "u5", "score": 50}
    assert first["periods"][1]["ends_at"] == first["periods"][0]["starts_at"]
    assert first["next"] == "5"
    seen = [p["id"] for p in first["periods"]]
    after: str | None = first["next"]
    while after is not None:
        page = await get(boards, "/api/boards/season/periods", limit=2, before=after)
        seen += [p["id"] for p in page["periods"]]
        after = page["next"]
    assert seen == ["6", "5", "4", "3", "2", "1"]
    only = await get(boards, "/api/boards/main/periods")
    assert [(p["id"], p["entries"]) for p in only["periods"]] == [("all", 6)]
    assert only["next"] is None
