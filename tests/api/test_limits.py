"""Rate and velocity limits on the update route (``web.limits``), in-process over ASGI.

Each refusal is a 429 with the JSON error body and the ``Retry-After`` / ``RateLimit-*`` headers,
and changes nothing. What counts against which limit is the order in ``web.limits``: the address
limit counts every request, the user limit every authenticated one, the velocity limit only the
points of updates that were applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
from limits.aio.storage import RedisStorage
from prometheus_client.parser import text_string_to_metric_families

from scoreboard.adapters.memory_points_window import MemoryPointsWindow
from tests.api.conftest import UPDATE, ApiFactory, assert_error
from tests.support.clock import FakeClock
from tests.support.server import free_port
from tests.support.tokens import token

OFF: dict[str, Any] = {"rate_limit_user": None, "rate_limit_ip": None, "velocity_limit": None}


def assert_429(response: httpx.Response, code: str, limit: int, remaining: int = 0) -> None:
    body = assert_error(response, 429)
    assert body["error"] == code, body
    retry = int(response.headers["retry-after"])
    assert 1 <= retry <= 60
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == str(remaining)
    assert 1 <= int(response.headers["ratelimit-reset"]) <= 60


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {name} {labels}")


async def test_1000_concurrent_updates_against_a_user_limit_of_100_let_exactly_100_through(
    make_api: ApiFactory,
) -> None:
    async with make_api(**{**OFF, "rate_limit_user": "100/minute"}) as api:
        responses = await asyncio.gather(
            *(api.update("alice", 1, action_id=f"a{i}") for i in range(1000))
        )
        statuses = [r.status_code for r in responses]
        assert statuses.count(200) == 100, sorted(set(statuses))
        assert statuses.count(429) == 900
        for response in responses:
            if response.status_code == 429:
                assert_429(response, "rate_limited_user", 100)
        assert api.rows("SELECT count(*) FROM scores") == [(100,)]
        assert api.rows("SELECT score FROM standings WHERE user_id = 'alice'") == [(100,)]


async def test_1000_concurrent_updates_against_an_address_limit_of_100_let_exactly_100_through(
    make_api: ApiFactory,
) -> None:
    async with make_api(**{**OFF, "rate_limit_ip": "100/minute"}) as api:
        responses = await asyncio.gather(*(api.update(f"user{i}", 1) for i in range(1000)))
        statuses = [r.status_code for r in responses]
        assert statuses.count(200) == 100, sorted(set(statuses))
        assert statuses.count(429) == 900
        assert_429(next(r for r in responses if r.status_code == 429), "rate_limited_address", 100)
        assert api.rows("SELECT count(*) FROM scores") == [(100,)]


async def test_a_rate_limited_update_changes_nothing(make_api: ApiFactory) -> None:
    async with make_api(**{**OFF, "rate_limit_user": "2/minute"}) as api:
        await api.ok("alice", 5)
        await api.ok("alice", 5)
        before = await api.state()
        assert_429(await api.update("alice", 7), "rate_limited_user", 2)
        assert await api.state() == before


async def test_the_user_limit_is_per_user(make_api: ApiFactory) -> None:
    async with make_api(**{**OFF, "rate_limit_user": "1/minute"}) as api:
        await api.ok("alice", 1)
        assert_429(await api.update("alice", 1), "rate_limited_user", 1)
        await api.ok("bob", 1)


async def test_unauthenticated_requests_do_not_spend_the_users_budget(
    make_api: ApiFactory,
) -> None:
    """Nobody can lock alice out by posting in her name without her token."""
    async with make_api(**{**OFF, "rate_limit_user": "2/minute"}) as api:
        forged = {"user_id": "alice", "score_delta": 1, "auth_token": token("mallory")}
        for _ in range(5):
            assert_error(await api.client.post(UPDATE, json=forged), 401)
        bad_body = {"user_id": "alice", "score_delta": "1", "auth_token": token("alice")}
        assert_error(await api.client.post(UPDATE, json=bad_body), 400)
        await api.ok("alice", 1)
        await api.ok("alice", 1)
        assert_429(await api.update("alice", 1), "rate_limited_user", 2)


async def test_the_address_limit_counts_every_request(make_api: ApiFactory) -> None:
    async with make_api(**{**OFF, "rate_limit_ip": "3/minute"}) as api:
        assert_error(await api.client.post(UPDATE, content=b"{"), 400)
        assert_error(await api.client.post(UPDATE, json={"user_id": "a", "score_delta": 1}), 401)
        await api.ok("alice", 1)
        before = await api.state()
        assert_429(await api.update("bob", 1), "rate_limited_address", 3)
        assert await api.state() == before


async def test_velocity_refuses_points_past_the_budget_and_the_refusal_costs_nothing(
    make_api: ApiFactory,
) -> None:
    async with make_api(**{**OFF, "velocity_limit": 1000}) as api:
        await api.ok("alice", 600)
        before = await api.state()
        assert_429(await api.update("alice", 500), "velocity_limited", 1000, remaining=400)
        assert await api.state() == before
        # The 500 refused above took nothing: 600 + 400 is exactly the budget.
        await api.ok("alice", 400)
        assert_429(await api.update("alice", 1), "velocity_limited", 1000)
        await api.ok("bob", 1000)  # per user


async def test_velocity_counts_the_points_of_any_60_s_not_of_a_calendar_minute(
    make_api: ApiFactory,
) -> None:
    """+48 at 58 s and +50 at 61.5 s: 98 points in 3.5 s, which a fixed minute opened at 0 s
    lets through against a limit of 50."""
    async with make_api(**{**OFF, "velocity_limit": 50}) as api:
        clock = FakeClock()
        api.app.state.components.update_limits.window = MemoryPointsWindow(clock)
        await api.ok("alice", 1)
        clock.at(58)
        await api.ok("alice", 48)
        clock.at(61.5)
        before = await api.state()
        response = await api.update("alice", 50)
        assert_429(response, "velocity_limited", 50, remaining=2)
        # Retry-After: when the 48 of 58 s have left, 56.5 s from now (not the next minute).
        assert response.headers["retry-after"] == response.headers["ratelimit-reset"] == "57"
        assert await api.state() == before
        await api.ok("alice", 2)
        clock.at(58 + 60)
        await api.ok("alice", 48)
        assert_429(await api.update("alice", 1), "velocity_limited", 50)


async def test_concurrent_updates_cannot_share_one_remaining_budget(make_api: ApiFactory) -> None:
    """The delta is reserved before the commit: 100 concurrent updates of 100 points against a
    budget of 1,000 let exactly 10 through, not all those that saw room before any committed."""
    async with make_api(**{**OFF, "velocity_limit": 1000}) as api:
        responses = await asyncio.gather(
            *(api.update("alice", 100, action_id=f"a{i}") for i in range(100))
        )
        statuses = [r.status_code for r in responses]
        assert statuses.count(200) == 10, sorted(set(statuses))
        assert statuses.count(429) == 90
        assert api.rows("SELECT score FROM standings WHERE user_id = 'alice'") == [(1000,)]


async def test_an_update_refused_after_the_reservation_gives_its_points_back(
    make_api: ApiFactory,
) -> None:
    async with make_api(**{**OFF, "velocity_limit": 1000}) as api:
        await api.ok("alice", 300, action_id="quest-1")
        before = await api.state()
        # Same action, another delta: 409 from the store, after 400 points were reserved.
        assert_error(await api.update("alice", 400, action_id="quest-1"), 409)
        assert await api.state() == before
        # Had the 409 kept its 400 points, 300 + 400 + 700 would be over the budget.
        await api.ok("alice", 700)


async def test_a_retried_action_costs_no_points(make_api: ApiFactory) -> None:
    async with make_api(**{**OFF, "velocity_limit": 1000}) as api:
        await api.ok("alice", 300, action_id="quest-1")
        for _ in range(3):  # retries: 200 with the same total, nothing added, nothing spent
            assert (await api.ok("alice", 300, action_id="quest-1"))["new_score"] == 300
        await api.ok("alice", 700)  # had the retries spent 900, this would be over the budget


async def test_concurrent_retries_of_one_action_all_get_its_answer(
    make_api: ApiFactory,
) -> None:
    """50 identical requests at once against a budget that fits one: the action is applied once
    and every one of them is answered with it; none is refused for points it does not add."""
    async with make_api(**{**OFF, "velocity_limit": 100, "rate_limit_user": "60/minute"}) as api:
        responses = await asyncio.gather(
            *(api.update("alice", 100, action_id="quest-1") for _ in range(50))
        )
        assert [r.status_code for r in responses] == [200] * 50, {r.text for r in responses}
        assert {r.json()["new_score"] for r in responses} == {100}
        assert api.rows("SELECT score FROM standings WHERE user_id = 'alice'") == [(100,)]
        assert api.rows("SELECT count(*) FROM scores") == [(1,)]
        for _ in range(10):  # later retries too, while the budget is spent by this very action
            assert (await api.ok("alice", 100, action_id="quest-1"))["new_score"] == 100
        # A retry is still a request: the 61st of the minute meets the user limit.
        assert_429(await api.update("alice", 100, action_id="quest-1"), "rate_limited_user", 60)
        text = (await api.client.get("/metrics")).text
        assert metric(text, "scoreboard_rate_limited_total", limit="velocity") == 0


async def test_a_retry_of_an_action_older_than_the_window_is_answered_not_refused(
    make_api: ApiFactory,
) -> None:
    """Its reservation left the window, and the budget is spent on other points: the store says
    the action is applied, so the retry gets the replay's 200, never a 429."""
    async with make_api(**{**OFF, "velocity_limit": 100}) as api:
        clock = FakeClock()
        api.app.state.components.update_limits.window = MemoryPointsWindow(clock)
        await api.ok("alice", 60, action_id="quest-1")
        clock.at(61)
        await api.ok("alice", 100, action_id="quest-2")
        before = await api.state()
        responses = await asyncio.gather(
            *(api.update("alice", 60, action_id="quest-1") for _ in range(50))
        )
        assert [r.status_code for r in responses] == [200] * 50, {r.text for r in responses}
        assert {r.json()["new_score"] for r in responses} == {160}
        assert await api.state() == before
        # The same action with another delta is the conflict it is, not a velocity refusal.
        body = assert_error(await api.update("alice", 61, action_id="quest-1"), 409)
        assert body["error"] == "action_conflict"
        # A new action is new points: refused.
        assert_429(await api.update("alice", 1, action_id="quest-3"), "velocity_limited", 100)
        assert await api.state() == before


async def test_a_store_failure_gives_the_points_back(
    make_api: ApiFactory,
) -> None:
    async with make_api(**{**OFF, "velocity_limit": 1000}) as api:
        store = api.app.state.components.store
        real_apply = store.apply

        async def failing(update: Any) -> Any:
            from scoreboard.errors import Unavailable

            raise Unavailable("the score store is unavailable, try again shortly")

        store.apply = failing
        assert_error(await api.update("alice", 1000), 503)
        store.apply = real_apply
        await api.ok("alice", 1000)


async def test_negative_deltas_are_not_velocity_limited(make_api: ApiFactory) -> None:
    async with make_api(**{**OFF, "velocity_limit": 10}, min_delta=-1000) as api:
        await api.ok("alice", 10)
        await api.ok("alice", -1000)
        await api.ok("alice", -1000)
        assert_429(await api.update("alice", 1), "velocity_limited", 10)


async def test_empty_settings_turn_every_limit_off(make_api: ApiFactory) -> None:
    async with make_api(rate_limit_user="", rate_limit_ip="", velocity_limit="") as api:
        assert api.settings.rate_limit_user is None
        assert api.settings.velocity_limit is None
        for i in range(15):
            await api.ok("alice", 1000, action_id=f"a{i}")


async def test_the_defaults_limit_a_public_site(make_api: ApiFactory) -> None:
    async with make_api() as api:
        assert api.settings.rate_limit_user == "60/minute"
        assert api.settings.rate_limit_ip == "600/minute"
        assert api.settings.velocity_limit == 10_000
        for _ in range(10):
            await api.ok("alice", 1000)
        assert_429(await api.update("alice", 1), "velocity_limited", 10_000)


# -- the client address --------------------------------------------------------------------


async def test_a_spoofed_forwarded_for_changes_nothing(make_api: ApiFactory) -> None:
    async with make_api(**{**OFF, "rate_limit_ip": "2/minute"}) as api:
        for i in range(2):
            headers = {"X-Forwarded-For": f"203.0.113.{i}"}
            body = {"user_id": f"u{i}", "score_delta": 1, "auth_token": token(f"u{i}")}
            assert (await api.client.post(UPDATE, json=body, headers=headers)).status_code == 200
        before = await api.state()
        body = {"user_id": "u9", "score_delta": 1, "auth_token": token("u9")}
        response = await api.client.post(
            UPDATE, json=body, headers={"X-Forwarded-For": "198.51.100.7"}
        )
        assert_429(response, "rate_limited_address", 2)
        assert await api.state() == before


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    make_api: ApiFactory,
) -> None:
    # The in-process client's peer is 127.0.0.1: here it is the trusted proxy.
    async with make_api(**{**OFF, "rate_limit_ip": "1/minute"}, trusted_proxies="127.0.0.1") as api:

        async def post(forwarded: str, user: str) -> httpx.Response:
            body = {"user_id": user, "score_delta": 1, "auth_token": token(user)}
            return await api.client.post(UPDATE, json=body, headers={"X-Forwarded-For": forwarded})

        assert (await post("203.0.113.1", "a")).status_code == 200
        assert (await post("203.0.113.2", "b")).status_code == 200
        # A client-written entry left of the proxy's changes nothing: still 203.0.113.1.
        assert_429(await post("10.9.9.9, 203.0.113.1", "c"), "rate_limited_address", 1)
        assert api.rows("SELECT count(*) FROM scores") == [(2,)]


# -- the limiter's storage failing ----------------------------------------------------------


async def test_when_the_limiter_storage_is_down_updates_go_through_logged_and_counted(
    make_api: ApiFactory, caplog: Any
) -> None:
    """Fail open (see ``web.limits``): a dead Redis must not stop score updates."""
    from scoreboard.web.guards.limits import UpdateLimits

    dead = RedisStorage(
        f"async+redis://127.0.0.1:{free_port()}/0",
        implementation="redispy",
        wrap_exceptions=True,
        socket_connect_timeout=1,
    )
    async with make_api() as api, dead_points_window() as points:
        metrics = api.app.state.metrics
        api.app.state.components.update_limits = UpdateLimits(
            dead, points, per_user="1/minute", per_address="1/minute", velocity=1, metrics=metrics
        )
        with caplog.at_level(logging.WARNING, logger="scoreboard.web.guards.limits"):
            for i in range(3):
                await api.ok("alice", 500, action_id=f"a{i}")
        assert api.rows("SELECT score FROM standings") == [(1500,)]
        lines = [r for r in caplog.records if r.name == "scoreboard.web.guards.limits"]
        assert len(lines) == 1, lines  # one line, not one per request
        assert "letting updates through" in lines[0].getMessage()
        text = (await api.client.get("/metrics")).text
        assert metric(text, "scoreboard_backend_errors_total", backend="rate_limit_storage") >= 1
        assert metric(text, "scoreboard_updates_total", outcome="accepted") == 3


async def test_when_only_the_points_window_is_down_updates_go_through_logged_and_counted(
    make_api: ApiFactory, caplog: Any
) -> None:
    """The velocity limit alone fails open too (its Redis script, not ``limits``')."""
    async with make_api(**{**OFF, "velocity_limit": 1}) as api, dead_points_window() as points:
        api.app.state.components.update_limits.window = points
        with caplog.at_level(logging.WARNING, logger="scoreboard.web.guards.limits"):
            for i in range(3):
                await api.ok("alice", 500, action_id=f"a{i}")
        assert api.rows("SELECT score FROM standings") == [(1500,)]
        lines = [r for r in caplog.records if r.name == "scoreboard.web.guards.limits"]
        assert len(lines) == 1, lines
        text = (await api.client.get("/metrics")).text
        assert metric(text, "scoreboard_backend_errors_total", backend="rate_limit_storage") >= 1


@contextlib.asynccontextmanager
async def dead_points_window() -> AsyncIterator[Any]:
    """A Redis points window whose server does not answer (nothing listens on its port)."""
    import redis.asyncio as aioredis

    from scoreboard.adapters.redis_points_window import RedisPointsWindow

    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        yield RedisPointsWindow(client)
    finally:
        await client.aclose()
