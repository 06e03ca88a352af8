"""``GET /api/scores/top10``: at most 10 entries, highest first, equal scores ranked by who
reached the score first; the ranks in update responses agree with it."""

from __future__ import annotations

from tests.api.conftest import TOP10, Api, ApiFactory


def _pairs(entries: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["user_id"], e["score"]) for e in entries]


async def test_an_empty_board(api: Api) -> None:
    response = await api.client.get(TOP10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"scores": []}


async def test_at_most_ten_entries_highest_first(api: Api) -> None:
    # Arrival order differs from both score order and id order.
    for i, score in enumerate([7, 12, 1, 9, 3, 11, 5, 10, 2, 8, 4, 6]):
        result = await api.ok(f"user{i:02d}", score)
        assert result["new_score"] == score

    entries = await api.top10()

    assert len(entries) == 10
    assert [e["score"] for e in entries] == [12, 11, 10, 9, 8, 7, 6, 5, 4, 3]
    assert [e["rank"] for e in entries] == list(range(1, 11))
    for e in entries:
        assert {"user_id", "score"} <= set(e)
        assert e["username"] == e["user_id"]
    scores = {e["user_id"]: e["score"] for e in entries}
    assert "user02" not in scores  # score 1
    assert "user08" not in scores  # score 2


async def test_the_rank_in_an_update_response_counts_users_below_the_top(api: Api) -> None:
    for i in range(10):
        await api.ok(f"top{i}", 100 + i)
    assert (await api.ok("eleventh", 50))["rank"] == 11
    assert (await api.ok("twelfth", 40))["rank"] == 12
    assert "eleventh" not in {e["user_id"] for e in await api.top10()}
    # 101 ties with top1, who got there first: eleventh is 10th and top0 (100) drops out.
    assert (await api.ok("eleventh", 51))["rank"] == 10
    entries = await api.top10()
    assert [e["user_id"] for e in entries[-2:]] == ["top1", "eleventh"]
    assert "top0" not in {e["user_id"] for e in entries}


async def test_equal_scores_rank_whoever_reached_the_score_first(api: Api) -> None:
    await api.ok("carol", 4)
    assert (await api.ok("zed", 10))["rank"] == 1
    assert (await api.ok("bob", 10))["rank"] == 2  # same score, later
    assert (await api.ok("carol", 6))["rank"] == 3  # reaches 10 last, by another path
    assert _pairs(await api.top10()) == [("zed", 10), ("bob", 10), ("carol", 10)]

    assert (await api.ok("bob", 1))["rank"] == 1
    assert (await api.ok("zed", 1))["rank"] == 2  # 11 too, but after bob
    assert _pairs(await api.top10()) == [("bob", 11), ("zed", 11), ("carol", 10)]


async def test_a_tie_at_the_cut_keeps_whoever_got_there_first(api: Api) -> None:
    arrivals = [f"p{chr(ord('z') - i)}" for i in range(11)]  # pz, py, ... : ids sort backwards
    for user in arrivals:
        await api.ok(user, 5)
    entries = await api.top10()
    assert [e["user_id"] for e in entries] == arrivals[:10]
    assert (await api.ok(arrivals[10], 1, action_id="x"))["rank"] == 1


async def test_a_retry_does_not_move_a_user_in_a_tie(api: Api) -> None:
    await api.ok("alice", 10, action_id="a1")
    await api.ok("bob", 10, action_id="b1")
    assert (await api.ok("alice", 10, action_id="a1"))["rank"] == 1
    assert _pairs(await api.top10()) == [("alice", 10), ("bob", 10)]


async def test_falling_back_to_a_score_counts_as_reaching_it_then(make_api: ApiFactory) -> None:
    async with make_api(min_delta=-100, max_delta=100) as api:
        await api.ok("bob", 15)
        await api.ok("alice", 10)
        assert (await api.ok("bob", -5))["rank"] == 2
        assert _pairs(await api.top10()) == [("alice", 10), ("bob", 10)]


async def test_the_order_of_ties_survives_a_restart(make_api: ApiFactory) -> None:
    async with make_api() as api:
        await api.ok("zed", 10)
        await api.ok("amy", 10)
        await api.ok("kim", 3)
        await api.ok("kim", 7)
        before = await api.top10()
        folder = api.database.parent
    async with make_api(reuse=folder) as again:
        assert await again.top10() == before
        assert [e["user_id"] for e in before] == ["zed", "amy", "kim"]


async def test_a_user_falling_out_of_the_top_lets_the_eleventh_in(make_api: ApiFactory) -> None:
    async with make_api(min_delta=-1000, max_delta=1000) as api:
        for i in range(11):
            await api.ok(f"u{i:02d}", 100 - i)  # u00 best ... u10 eleventh
        assert "u10" not in {e["user_id"] for e in await api.top10()}
        assert (await api.ok("u00", -1000))["rank"] == 11
        entries = await api.top10()
        assert [e["user_id"] for e in entries] == [f"u{i:02d}" for i in range(1, 11)]
        assert [e["rank"] for e in entries] == list(range(1, 11))
