"""Reads beyond the top 10: pages, one user, around-me, history; every parameter error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.api.conftest import Api, assert_error


async def board(api: Api, **params: object) -> dict[str, object]:
    response = await api.client.get("/api/scores", params=params)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


async def test_pages_walk_the_whole_board_in_rank_order(api: Api) -> None:
    for i in range(25):
        await api.ok(f"u{i:02d}", 1 + i % 5)
    seen = []
    for offset in range(0, 30, 7):
        page = await board(api, offset=offset, limit=7)
        assert (page["total"], page["offset"], page["limit"]) == (25, offset, 7)
        seen += page["scores"]  # type: ignore[operator]
    assert [e["rank"] for e in seen] == list(range(1, 26))
    assert len({e["user_id"] for e in seen}) == 25
    assert seen[:10] == await api.top10()
    scores = [e["score"] for e in seen]
    assert scores == sorted(scores, reverse=True)


async def test_default_page_is_the_top_10(seeded: Api) -> None:
    page = await board(seeded)
    assert (page["offset"], page["limit"], page["total"]) == (0, 10, 3)
    assert page["scores"] == await seeded.top10()


async def test_one_user(seeded: Api) -> None:
    response = await seeded.client.get("/api/users/alice")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("user_id", "username", "score", "rank")} == {
        "user_id": "alice",
        "username": "Alice",
        "score": 10,
        "rank": 3,
    }
    updated = datetime.fromisoformat(body["updated_at"])
    assert abs(updated - datetime.now(UTC)) < timedelta(minutes=5)


async def test_around_a_user(api: Api) -> None:
    for i in range(10):
        await api.ok(f"u{i}", 100 - i)  # u0 first ... u9 last
    response = await api.client.get("/api/users/u5/around", params={"radius": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["rank"] == 6
    assert [(e["rank"], e["user_id"]) for e in body["scores"]] == [
        (4, "u3"),
        (5, "u4"),
        (6, "u5"),
        (7, "u6"),
        (8, "u7"),
    ]
    edge = (await api.client.get("/api/users/u0/around", params={"radius": 3})).json()
    assert [e["user_id"] for e in edge["scores"]] == ["u0", "u1", "u2", "u3"]


async def test_history_events_paged_by_cursor(api: Api) -> None:
    for i, delta in enumerate((5, 3, 7, 1, 2)):
        await api.ok("alice", delta, action_id=f"act-{i}")
    events: list[dict[str, object]] = []
    cursor = None
    for _ in range(10):
        params: dict[str, object] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        response = await api.client.get("/api/users/alice/history", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        events += body["events"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [(e["delta"], e["score"], e["action_id"]) for e in events] == [
        (5, 5, "act-0"),
        (3, 8, "act-1"),
        (7, 15, "act-2"),
        (1, 16, "act-3"),
        (2, 18, "act-4"),
    ]


async def test_a_history_cursor_is_a_position_a_client_can_also_write(api: Api) -> None:
    for i in range(3):
        await api.ok("alice", 1 + i, action_id=f"act-{i}")
    url = "/api/users/alice/history"
    first = (await api.client.get(url, params={"limit": 1})).json()
    micros, _, event_id = first["next_cursor"].partition(".")
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
    assert at == datetime.fromisoformat(first["events"][0]["at"])
    assert int(event_id) > 0
    rest = (await api.client.get(url, params={"cursor": first["next_cursor"]})).json()
    assert [e["delta"] for e in rest["events"]] == [2, 3]
    everything = (await api.client.get(url, params={"cursor": "0"})).json()
    assert [e["delta"] for e in everything["events"]] == [1, 2, 3]


async def test_history_buckets_page_by_cursor(api: Api) -> None:
    await api.ok("alice", 5)
    url = "/api/users/alice/history"
    page = (await api.client.get(url, params={"bucket": "hour", "limit": 1})).json()
    assert [p["score"] for p in page["points"]] == [5]
    assert page["next_cursor"].isdigit()  # where the next page starts: the next hour
    start = datetime.fromisoformat(page["points"][0]["at"])
    assert int(page["next_cursor"]) == int((start.timestamp() + 3600) * 1_000_000)
    after = await api.client.get(url, params={"bucket": "hour", "cursor": page["next_cursor"]})
    assert after.json()["points"] == []


async def test_history_in_buckets_and_time_window(api: Api) -> None:
    await api.ok("alice", 5)
    await api.ok("alice", 6)
    response = await api.client.get("/api/users/alice/history", params={"bucket": "hour"})
    body = response.json()
    assert response.status_code == 200
    assert [p["score"] for p in body["points"]] == [11]
    start = datetime.fromisoformat(body["points"][0]["at"])
    assert (start.minute, start.second) == (0, 0)
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = await api.client.get("/api/users/alice/history", params={"since": future})
    assert later.json()["events"] == []
    day = await api.client.get("/api/users/alice/history", params={"bucket": "day"})
    assert [p["score"] for p in day.json()["points"]] == [11]


async def test_a_window_that_ends_before_it_starts_is_empty_not_an_error(seeded: Api) -> None:
    """The OpenAPI document cannot relate two parameters, so a client cannot know to avoid it."""
    for bucket in (None, "hour"):
        params = {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
        if bucket:
            params["bucket"] = bucket
        response = await seeded.client.get("/api/users/alice/history", params=params)
        assert response.status_code == 200, response.text
        assert response.json()["events" if bucket is None else "points"] == []


@pytest.mark.parametrize(
    "since",
    [
        "0001-01-01T00:00:00+01:00",  # before year 1 once in UTC: was a 500
        "0005-01-01T00:00:00Z",  # a year of fewer than 4 digits: compared as text, found nothing
        "0000-02-29T00:00:00Z",  # year 0 is valid RFC 3339 (and a leap year)
        "1969-12-31T23:59:60Z",  # a leap second, in UTC
        "1970-01-01t00:00:00.123456789z",  # lower case, nanoseconds
    ],
)
async def test_any_time_before_the_first_event_selects_every_event(seeded: Api, since: str) -> None:
    response = await seeded.client.get("/api/users/alice/history", params={"since": since})
    assert response.status_code == 200, response.text
    assert [e["delta"] for e in response.json()["events"]] == [10]


async def test_any_time_in_the_far_future_selects_none(seeded: Api) -> None:
    for since in ("9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59-23:59"):
        response = await seeded.client.get("/api/users/alice/history", params={"since": since})
        assert response.status_code == 200, response.text
        assert response.json()["events"] == []
    until = "9999-12-31T23:59:59-23:59"  # past year 9999 once in UTC
    response = await seeded.client.get("/api/users/alice/history", params={"until": until})
    assert [e["delta"] for e in response.json()["events"]] == [10]


async def test_unknown_users_are_404(seeded: Api) -> None:
    assert_error(await seeded.client.get("/api/users/nobody"), 404)
    assert_error(await seeded.client.get("/api/users/nobody/around"), 404)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/scores", {"limit": 0}),
        ("/api/scores", {"limit": 101}),
        ("/api/scores", {"limit": -1}),
        ("/api/scores", {"limit": "5.0"}),
        ("/api/scores", {"limit": "ten"}),
        ("/api/scores", {"limit": ""}),
        ("/api/scores", {"offset": -1}),
        ("/api/scores", {"offset": "1e3"}),
        ("/api/scores", {"offset": "99999999999999999999"}),
        ("/api/users/alice/around", {"radius": 0}),
        ("/api/users/alice/around", {"radius": 51}),
        ("/api/users/alice/around", {"radius": "2.5"}),
        ("/api/users/bad%20id", {}),
        ("/api/users/" + "x" * 65, {}),
        ("/api/users/alice/history", {"since": "yesterday"}),
        ("/api/users/alice/history", {"until": "2026-13-01T00:00:00Z"}),
        ("/api/users/alice/history", {"since": "2026-01-02"}),  # a date is not a time
        ("/api/users/alice/history", {"since": "2026-01-02T10:00"}),  # no seconds
        ("/api/users/alice/history", {"since": "2026-01-02 10:00:00Z"}),
        ("/api/users/alice/history", {"since": "2026-02-29T00:00:00Z"}),
        ("/api/users/alice/history", {"until": "2026-01-01T00:00:60Z"}),  # not a leap second
        ("/api/users/alice/history", {"until": "2026-01-01T00:00:00+24:00"}),
        ("/api/users/alice/history", {"bucket": "week"}),
        ("/api/users/alice/history", {"bucket": ""}),
        ("/api/users/alice/history", {"cursor": "!!not-a-cursor!!"}),
        ("/api/users/alice/history", {"cursor": "bm9wZQ"}),
        ("/api/users/alice/history", {"limit": 1001}),
        ("/api/users/alice/history", {"limit": 0}),
    ],
)
async def test_bad_parameters_are_400(seeded: Api, path: str, params: dict[str, object]) -> None:
    before = await seeded.state()
    assert_error(await seeded.client.get(path, params=params), 400)
    assert await seeded.state() == before


async def test_openapi_documents_400_and_404_and_never_422(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    assert "422" not in str(schema)
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path in ("/api/scores", "/api/users/{user_id}/history"):
        assert "400" in schema["paths"][path]["get"]["responses"]
    for path in ("/api/users/{user_id}", "/api/users/{user_id}/around"):
        assert {"400", "404"} <= set(schema["paths"][path]["get"]["responses"])
