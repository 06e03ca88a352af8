"""Reading the past over HTTP: ``at`` on a board's top 10, page and user, and a user's
trajectory; every bad parameter is a 400 with the JSON error body and changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scoreboard.model import Audit
from scoreboard.past import Past
from tests.api.conftest import Api, assert_error

MAIN = "/api/boards/main"


def stamp(moment: datetime, *, offset: bool = True) -> str:
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z" if offset else "")


async def get(api: Api, path: str, **params: Any) -> Any:
    response = await api.client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def story(api: Api) -> tuple[Api, list[datetime]]:
    """alice 10, then bob 30, then alice +25: the instants right after each."""
    after = []
    for user, delta, action in (("alice", 10, "a1"), ("bob", 30, "b1"), ("alice", 25, "a2")):
        await api.ok(user, delta, action_id=action, name=user.title())
        after.append(datetime.now(UTC))
    return api, after


async def test_the_board_as_it_stood(story: tuple[Api, list[datetime]]) -> None:
    api, (t1, t2, t3) = story
    top = await get(api, f"{MAIN}/top10", at=stamp(t1))
    assert top == {
        "board": "main",
        "period": "all",
        "scores": [{"rank": 1, "user_id": "alice", "username": "Alice", "score": 10}],
    }
    top = await get(api, f"{MAIN}/top10", at=stamp(t2, offset=False))  # no offset: UTC
    assert [(e["user_id"], e["score"]) for e in top["scores"]] == [("bob", 30), ("alice", 10)]
    top = await get(api, f"{MAIN}/top10", at=stamp(t3))
    now = await get(api, f"{MAIN}/top10")
    assert top["scores"] == now["scores"]
    page = await get(api, f"{MAIN}/scores", at=stamp(t2), offset=1, limit=5)
    assert page["total"] == 2
    assert [e["user_id"] for e in page["scores"]] == ["alice"]
    user = await get(api, f"{MAIN}/users/alice", at=stamp(t2))
    assert (user["rank"], user["score"], user["period"]) == (2, 10, "all")
    assert datetime.fromisoformat(user["updated_at"]) <= t1
    response = await api.client.get(f"{MAIN}/users/carol", params={"at": stamp(t2)})
    assert assert_error(response, 404)["error"] == "unknown_user"
    early = await get(api, f"{MAIN}/top10", at="2001-01-01T00:00:00")
    assert early == {"board": "main", "period": "all", "scores": []}
    later = await get(api, f"{MAIN}/top10", at="2999-01-01T00:00:00Z")  # the future: now
    assert later["scores"] == now["scores"]


async def test_a_voided_event_no_longer_counts_in_the_past(
    story: tuple[Api, list[datetime]],
) -> None:
    api, (_, t2, _) = story
    components = api.app.state.components
    (bob_event,) = await components.store.events_of("bob", limit=1)
    audit = Audit("ops", "void", f"event:{bob_event.event_id}")
    await components.store.void(bob_event.event_id, components.service.config, audit)
    top = await get(api, f"{MAIN}/top10", at=stamp(t2))
    assert [e["user_id"] for e in top["scores"]] == ["alice"]


async def test_a_trajectory_of_hours(story: tuple[Api, list[datetime]]) -> None:
    api, (t1, _, t3) = story
    since = t1 - timedelta(hours=2)
    body = await get(
        api,
        f"{MAIN}/users/bob/trajectory",
        since=stamp(since),
        until=stamp(t3 + timedelta(microseconds=1)),
        bucket="hour",
    )
    assert (body["board"], body["bucket"]) == ("main", "hour")
    points = body["points"]
    assert 3 <= len(points) <= 4
    assert points[0] == {"at": points[0]["at"], "score": None, "rank": None}
    assert (points[-1]["score"], points[-1]["rank"]) == (30, 2)
    assert await get(api, f"{MAIN}/users/nobody/trajectory", bucket="day") == {
        "board": "main",
        "user_id": "nobody",
        "bucket": "day",
        "points": [],
    }


BAD = [
    ("/top10", {"at": "yesterday"}, "invalid_time"),
    ("/top10", {"at": "2026-11-27T10:00:00Z", "period": "all"}, "invalid_parameter"),
    ("/scores", {"at": "2026-13-01T00:00:00Z"}, "invalid_time"),
    ("/scores", {"at": "2026-11-27T10:00:00Z", "limit": "0"}, "invalid_parameter"),
    ("/users/alice", {"at": "2026-11-27 10:00"}, "invalid_time"),
    ("/users/alice", {"at": "2026-11-27T10:00:00Z", "period": "all"}, "invalid_parameter"),
    ("/users/alice/trajectory", {"bucket": "week"}, "invalid_bucket"),
    ("/users/alice/trajectory", {"since": "2026-11-27 10:00:00"}, "invalid_time"),
    ("/users/alice/trajectory", {"until": "2026-11-27T10:00"}, "invalid_time"),
    ("/users/alice/trajectory", {"until": "soon"}, "invalid_time"),
    (
        "/users/alice/trajectory",
        {"since": "2026-01-01T00:00:00Z", "until": "2026-03-01T00:00:00Z", "bucket": "hour"},
        "too_many_points",
    ),
]


@pytest.mark.parametrize(("path", "params", "code"), BAD)
async def test_bad_parameters_are_400_and_change_nothing(
    story: tuple[Api, list[datetime]], path: str, params: dict[str, str], code: str
) -> None:
    api, _ = story
    before = await api.state()
    response = await api.client.get(MAIN + path, params=params)
    body = assert_error(response, 400)
    if code != "invalid_parameter":  # FastAPI's own range check words it its way
        assert body["error"] == code, body
    assert await api.state() == before


async def test_since_and_until_read_a_time_without_offset_as_utc(
    story: tuple[Api, list[datetime]],
) -> None:
    """As ``at`` does (issue 16): the same answer as with ``Z``, on a user's history and
    trajectory; and an offset still moves the instant."""
    api, (t1, _, t3) = story
    for path, extra in (
        ("/api/users/alice/history", {}),
        (f"{MAIN}/users/alice/trajectory", {"bucket": "hour"}),
    ):
        zulu = {"since": stamp(t1), "until": stamp(t3), **extra}
        plain = {"since": stamp(t1, offset=False), "until": stamp(t3, offset=False), **extra}
        assert await get(api, path, **plain) == await get(api, path, **zulu)
    history = await get(
        api, "/api/users/alice/history", since=stamp(t1 + timedelta(hours=1), offset=False)
    )
    assert history["events"] == []
    east = (t1 + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+01:00"
    shifted = await get(api, "/api/users/alice/history", since=east)
    assert shifted == await get(api, "/api/users/alice/history", since=stamp(t1))


async def test_a_rank_at_t_is_read_backward_from_now(
    story: tuple[Api, list[datetime]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After t3 (alice 35, bob 30): carol and dan arrive, dan is hidden and bob's event voided.
    At t3 alice is first and bob, carol and dan nowhere; now carol is second. Every read came
    backward from the present standings (fewer events after t3 than before), not recounted."""
    api, (_, _, t3) = story
    await api.ok("carol", 20, action_id="c1", name="Carol")
    await api.ok("dan", 99, action_id="d1", name="Dan")
    components = api.app.state.components
    config = components.service.config
    (bob_event,) = await components.store.events_of("bob", limit=1)
    await components.store.void(bob_event.event_id, config, Audit("ops", "void", "e"))
    await components.store.set_status("dan", "hidden", config, Audit("ops", "hide", "dan"))
    answered: list[bool] = []
    backward = Past._backward

    async def spy(self: Past, *args: Any) -> Any:
        try:
            found = await backward(self, *args)
        except LookupError:  # answered: not on the board then
            answered.append(True)
            raise
        answered.append(found is not None)
        return found

    monkeypatch.setattr(Past, "_backward", spy)
    alice = await get(api, f"{MAIN}/users/alice", at=stamp(t3))
    assert (alice["rank"], alice["score"], alice["period"]) == (1, 35, "all")
    for gone in ("bob", "carol", "dan"):
        response = await api.client.get(f"{MAIN}/users/{gone}", params={"at": stamp(t3)})
        assert assert_error(response, 404)["error"] == "unknown_user"
    carol = await get(api, f"{MAIN}/users/carol", at=stamp(datetime.now(UTC)))
    assert (carol["rank"], carol["score"]) == (2, 20)  # behind alice; dan hidden
    assert answered == [True] * 5
