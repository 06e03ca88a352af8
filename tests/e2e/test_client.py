"""``scoreboard.client`` against a real ``scoreboard serve``: updates and reads in both forms, a
retry after a lost answer that does not count twice, Retry-After obeyed at a real rate limit,
typed errors that carry the service's JSON body (and changed nothing), grants."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scoreboard.client import (
    BadRequest,
    Conflict,
    NotFound,
    RateLimited,
    RetryPolicy,
    ScoreboardClient,
    Unauthorized,
    mint_grant,
    mint_token,
)
from tests.support.server import SECRET, ServerProcess
from tests.support.timing import scaled


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "server").start()
    yield proc
    proc.stop()


def sb(server: ServerProcess, **kwargs: Any) -> ScoreboardClient:
    return ScoreboardClient(server.base_url, timeout=scaled(10), **kwargs)


def tok(user_id: str) -> str:
    return mint_token(SECRET, user_id, name=user_id.title())


class LosesFirstAnswer(httpx.BaseTransport):
    """Sends every request to the server for real, but the first update's answer never comes
    back: the client sees the connection drop after the server has committed."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path == "/api/scores/update" and self.lost == 0:
            response.read()
            assert response.status_code == 200, response.text
            self.lost += 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncLosesFirstAnswer(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/api/scores/update" and self.lost == 0:
            await response.aread()
            assert response.status_code == 200, response.text
            self.lost += 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_post_and_read_back_every_way(server: ServerProcess) -> None:
    with sb(server) as client:
        first = client.post_update("alice", 25, tok("alice"), action_id="level-1")
        assert (first.new_score, first.rank, first.action_id) == (25, 1, "level-1")
        assert first.boards["main"].period == "all"
        client.post_update("bob", 10, tok("bob"))
        top = client.top10()
        assert [(e.rank, e.user_id, e.username, e.score) for e in top.entries] == [
            (1, "alice", "Alice", 25),
            (2, "bob", "Bob", 10),
        ]
        main = client.top10("main")
        assert (main.board, main.period, main.entries) == ("main", "all", top.entries)
        page = client.page(offset=1, limit=1)
        assert (page.total, [e.user_id for e in page.entries]) == (2, ["bob"])
        assert client.page("main", limit=1).entries == top.entries[:1]
        alice = client.user("alice")
        assert (alice.score, alice.rank, alice.username) == (25, 1, "Alice")
        assert client.user("bob", "main").rank == 2
        (board,) = client.boards()
        assert (board.id, board.metric, board.period.id, board.period.starts_at) == (
            "main",
            "points",
            "all",
            None,
        )


async def test_the_async_forms_against_the_server(server: ServerProcess) -> None:
    async with sb(server) as client:
        result = await client.post_update_async("alice", 7, tok("alice"))
        assert result.new_score == 7
        assert (await client.top10_async()).entries[0].user_id == "alice"
        assert (await client.page_async(limit=5)).total == 1
        assert (await client.user_async("alice")).score == 7
        assert [b.id for b in await client.boards_async()] == ["main"]


def test_a_retry_after_a_lost_answer_does_not_count_twice(server: ServerProcess) -> None:
    transport = LosesFirstAnswer()
    with sb(server, transport=transport) as client:
        result = client.post_update("alice", 40, tok("alice"))
        assert transport.lost == 1  # the server had committed the first attempt
        assert result.new_score == 40
        assert client.user("alice").score == 40


async def test_an_async_retry_after_a_lost_answer_does_not_count_twice(
    server: ServerProcess,
) -> None:
    transport = AsyncLosesFirstAnswer()
    async with sb(server, async_transport=transport) as client:
        result = await client.post_update_async("alice", 40, tok("alice"))
        assert (transport.lost, result.new_score) == (1, 40)
        assert (await client.user_async("alice")).score == 40


def test_retry_after_is_obeyed_at_a_real_rate_limit(tmp_path: Path) -> None:
    limited = ServerProcess(tmp_path / "limited", env={"SCOREBOARD_RATE_LIMIT_USER": "1/2 seconds"})
    limited.start()
    try:
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        with sb(limited, sleep=sleep) as client:
            client.post_update("alice", 5, tok("alice"))
            started = time.monotonic()
            second = client.post_update("alice", 5, tok("alice"))
            assert second.new_score == 10
            assert waits  # the 429's Retry-After, whole seconds
            assert waits[0] >= 1
            assert time.monotonic() - started >= waits[0]
        # Told not to retry: the 429 is raised, with what the service said, and added nothing.
        with sb(limited, retry=RetryPolicy(attempts=1)) as client:
            with pytest.raises(RateLimited) as caught:
                client.post_update("alice", 5, tok("alice"))
            assert caught.value.status == 429
            assert caught.value.code.startswith("rate_limited")
            assert caught.value.retry_after is not None
            assert caught.value.retry_after >= 1
            assert client.user("alice").score == 10
    finally:
        limited.stop()


def test_errors_are_typed_with_the_services_body_and_change_nothing(
    server: ServerProcess,
) -> None:
    with sb(server) as client:
        client.post_update("alice", 5, tok("alice"), action_id="a1")
        with pytest.raises(Conflict) as conflict:
            client.post_update("alice", 6, tok("alice"), action_id="a1")
        assert (conflict.value.status, conflict.value.code) == (409, "action_conflict")
        with pytest.raises(Unauthorized) as unauthorized:
            client.post_update("alice", 5, mint_token("another-secret-" * 3, "alice"))
        assert unauthorized.value.code == "token_invalid"
        assert unauthorized.value.message
        with pytest.raises(BadRequest):
            client.post_update("alice", 5, tok("alice"), metric="no_such_metric")
        with pytest.raises(NotFound) as missing:
            client.user("nobody")
        assert missing.value.code == "unknown_user"
        with pytest.raises(NotFound) as no_board:
            client.top10("no-board")
        assert no_board.value.code == "unknown_board"
        assert client.user("alice").score == 5
        assert client.page().total == 1


def test_a_grant_is_applied_once_however_often_it_is_posted(tmp_path: Path) -> None:
    granting = ServerProcess(tmp_path / "grants", env={"SCOREBOARD_AUTH_MODE": "grant"}).start()
    try:
        grant = mint_grant(SECRET, "alice", 50, "level-7-won")
        with sb(granting) as client:
            first = client.post_update("alice", 50, grant)
            again = client.post_update("alice", 50, grant)
            assert (first.action_id, first.new_score, again.new_score) == ("level-7-won", 50, 50)
            with pytest.raises(Unauthorized):  # a login token is no grant
                client.post_update("alice", 50, tok("alice"))
            assert client.user("alice").score == 50
    finally:
        granting.stop()
