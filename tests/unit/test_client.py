"""``scoreboard.client`` without a server: the retry policy, Retry-After, the typed errors, the
action id every attempt shares, and minted tokens checked by the service's own verifier. The
transport is httpx's in-memory one; against a real server: tests/e2e/test_client.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import jwt
import pytest

from scoreboard import client
from scoreboard.auth import verify
from scoreboard.auth.verify import Grant, Identity, TokenVerifier
from scoreboard.client import (
    Conflict,
    RateLimited,
    RetryPolicy,
    ScoreboardClient,
    ScoreboardUnreachable,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    mint_grant,
    mint_token,
    retry_after,
)
from tests.support.jwks import AUDIENCE, ed_key, rsa_key
from tests.support.server import SECRET

KEY = SECRET.encode()
OK = {"user_id": "alice", "new_score": 5, "rank": 1, "boards": {}}


def check(verifier: TokenVerifier, value: str) -> Identity:
    return asyncio.run(verifier.verify(value))


class Script:
    """Answers requests in order, from a list of responses or exceptions to raise, and keeps
    every request it saw."""

    def __init__(self, *outcomes: httpx.Response | Exception) -> None:
        self._outcomes: Iterator[httpx.Response | Exception] = iter(outcomes)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        outcome = next(self._outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]


def answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=OK if body is None else body, headers=headers)


def sync_client(script: Script, **kwargs: Any) -> tuple[ScoreboardClient, list[float]]:
    waits: list[float] = []
    made = ScoreboardClient(
        "http://scores.test/base/",
        transport=httpx.MockTransport(script),
        sleep=waits.append,
        **kwargs,
    )
    return made, waits


def async_client(script: Script, **kwargs: Any) -> tuple[ScoreboardClient, list[float]]:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    made = ScoreboardClient(
        "http://scores.test/base/",
        async_transport=httpx.MockTransport(script),
        async_sleep=record,
        **kwargs,
    )
    return made, waits


# -- the retry policy --------------------------------------------------------------------------


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
    assert retry_after("7") == 7.0
    assert retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30
    assert retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now=now) == 0
    assert retry_after("soon") is None
    assert retry_after("-3") is None
    assert retry_after(None) is None


@pytest.mark.parametrize("status", [429, 503])
def test_a_429_or_503_waits_what_retry_after_says(status: int) -> None:
    policy = RetryPolicy(attempts=3, max_retry_after=10)
    assert policy.wait(1, answer(status, **{"Retry-After": "4"})) == 4
    # Longer than the caller accepts to block: not waited for, the error is raised.
    assert policy.wait(1, answer(status, **{"Retry-After": "11"})) is None
    # The last attempt is the last, whatever the answer.
    assert policy.wait(3, answer(status, **{"Retry-After": "1"})) is None


def test_without_retry_after_the_backoff_doubles_with_full_jitter() -> None:
    policy = RetryPolicy(attempts=10, backoff=0.5, max_backoff=3)
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (8, 3.0)]:
        waits = [policy.wait(attempt, httpx.ReadError("lost")) for _ in range(200)]
        assert all(w is not None and 0 <= w <= cap for w in waits)
        assert max(w for w in waits if w is not None) > cap / 2  # jitter spreads, not a constant


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 409, 413, 500])
def test_an_answer_retrying_cannot_change_is_final(status: int) -> None:
    assert RetryPolicy().wait(1, answer(status, {"error": "x", "message": "y"})) is None


def test_transient_transport_errors_are_retried_and_our_own_mistakes_are_not() -> None:
    policy = RetryPolicy()
    for error in [httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), httpx.ReadError("x")]:
        assert policy.wait(1, error) is not None
    assert policy.wait(1, httpx.RemoteProtocolError("peer closed")) is not None
    assert policy.wait(1, httpx.UnsupportedProtocol("ftp")) is None
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


# -- updates: one action id, however many attempts ---------------------------------------------


def test_a_lost_answer_is_retried_with_the_same_action_id() -> None:
    script = Script(
        httpx.ReadError("connection reset"), answer(503, **{"Retry-After": "2"}), answer(200)
    )
    made, waits = sync_client(script)
    result = made.post_update("alice", 5, "tok")
    assert result.new_score == 5
    ids = {body["action_id"] for body in script.bodies()}
    assert len(script.requests) == 3
    assert len(ids) == 1
    assert result.action_id in ids
    assert waits[1] == 2  # the 503's Retry-After
    assert 0 <= waits[0] <= RetryPolicy().backoff
    request = script.requests[0]
    assert request.url == "http://scores.test/base/api/scores/update"
    assert request.headers["authorization"] == "Bearer tok"
    assert "auth_token" not in script.bodies()[0]


def test_each_call_has_its_own_action_id_unless_the_caller_names_one() -> None:
    script = Script(answer(200), answer(200), answer(200))
    made, _ = sync_client(script)
    first = made.post_update("alice", 5, "tok")
    second = made.post_update("alice", 5, "tok")
    named = made.post_update("alice", 5, "tok", action_id="level-3", metric="lap_ms")
    assert first.action_id != second.action_id
    assert named.action_id == "level-3"
    assert script.bodies()[2] == {
        "user_id": "alice",
        "score_delta": 5,
        "action_id": "level-3",
        "metric": "lap_ms",
    }


def test_a_grant_is_sent_under_its_own_act() -> None:
    script = Script(answer(200))
    made, _ = sync_client(script)
    grant = mint_grant(KEY, "alice", 5, "level-7-won")
    assert made.post_update("alice", 5, grant).action_id == "level-7-won"
    assert script.bodies()[0]["action_id"] == "level-7-won"


def test_the_async_form_retries_the_same_way() -> None:
    script = Script(httpx.ConnectError("refused"), answer(429, **{"Retry-After": "3"}), answer(200))
    made, waits = async_client(script)

    async def run() -> client.UpdateResult:
        async with made:
            return await made.post_update_async("alice", 5, "tok")

    result = asyncio.run(run())
    assert result.boards == {}
    assert len({body["action_id"] for body in script.bodies()}) == 1
    assert waits[1] == 3


def test_after_the_last_attempt_the_typed_error_carries_the_body() -> None:
    body = {"error": "rate_limited_user", "message": "slow down"}
    script = Script(*[answer(429, body, **{"Retry-After": "1"}) for _ in range(2)])
    made, waits = sync_client(script, retry=RetryPolicy(attempts=2))
    with pytest.raises(RateLimited) as caught:
        made.post_update("alice", 5, "tok")
    assert (caught.value.status, caught.value.code) == (429, "rate_limited_user")
    assert (caught.value.message, caught.value.retry_after) == ("slow down", 1)
    assert waits == [1]


def test_a_retry_after_too_long_is_raised_at_once() -> None:
    script = Script(
        answer(503, {"error": "unavailable", "message": "later"}, **{"Retry-After": "600"})
    )
    made, waits = sync_client(script)
    with pytest.raises(ServiceUnavailable) as caught:
        made.post_update("alice", 5, "tok")
    assert caught.value.retry_after == 600
    assert waits == []


@pytest.mark.parametrize(
    ("status", "cls"), [(409, Conflict), (401, Unauthorized), (500, ServerError)]
)
def test_each_status_has_its_error_class(status: int, cls: type[Exception]) -> None:
    script = Script(answer(status, {"error": "some_code", "message": "a sentence"}))
    made, _ = sync_client(script)
    with pytest.raises(cls) as caught:
        made.post_update("alice", 5, "tok")
    assert isinstance(caught.value, client.ScoreboardHTTPError)
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        status,
        "some_code",
        "a sentence",
    )
    assert len(script.requests) == 1


def test_a_body_that_is_not_the_services_still_makes_a_typed_error() -> None:
    script = Script(*[httpx.Response(502, text="<html>bad gateway</html>") for _ in range(2)])
    made, _ = sync_client(script, retry=RetryPolicy(attempts=2))
    with pytest.raises(ServerError) as caught:
        made.top10()
    assert (caught.value.code, caught.value.message) == ("http_502", "<html>bad gateway</html>")


def test_no_answer_at_all_is_unreachable_with_the_cause() -> None:
    script = Script(*[httpx.ConnectError("refused") for _ in range(3)])
    made, waits = sync_client(script, retry=RetryPolicy(attempts=3))
    with pytest.raises(ScoreboardUnreachable) as caught:
        made.boards()
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(waits) == 2


# -- reads -------------------------------------------------------------------------------------


def test_reads_go_to_the_seed_or_the_board_endpoints() -> None:
    row = {"rank": 1, "user_id": "a@b", "username": None, "score": 9}
    user = {"user_id": "a@b", "username": None, "score": 9, "rank": 1}
    script = Script(
        answer(200, {"scores": [row]}),
        answer(200, {"board": "weekly", "period": "2026-W49", "scores": [row]}),
        answer(200, {"scores": [row], "total": 1, "offset": 0, "limit": 5}),
        answer(200, {**user, "updated_at": "2026-12-01T04:00:00.000000Z"}),
        answer(200, {**user, "updated_at": "2026-12-01T04:00:00Z", "board": "w/k", "period": "1"}),
    )
    made, _ = sync_client(script)
    assert made.top10().entries == (client.Entry(1, "a@b", None, 9),)
    weekly = made.top10("weekly", period="2026-W49")
    assert (weekly.board, weekly.period) == ("weekly", "2026-W49")
    assert made.page(limit=5).total == 1
    assert made.user("a@b").updated_at == datetime(2026, 12, 1, 4, tzinfo=UTC)
    assert made.user("a@b", "w/k", period="1").board == "w/k"
    assert [str(r.url) for r in script.requests] == [
        "http://scores.test/base/api/scores/top10",
        "http://scores.test/base/api/boards/weekly/top10?period=2026-W49",
        "http://scores.test/base/api/scores?offset=0&limit=5",
        "http://scores.test/base/api/users/a%40b",
        "http://scores.test/base/api/boards/w%2Fk/users/a%40b?period=1",
    ]
    with pytest.raises(ValueError, match="period needs a board"):
        made.top10(period="2026-W49")


# -- minting -----------------------------------------------------------------------------------


def test_a_minted_token_is_what_the_service_verifies() -> None:
    value = mint_token(SECRET, "alice", ttl=120, name="Alice", now=1_000_000)
    claims = jwt.decode(value, KEY, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"sub": "alice", "name": "Alice", "iat": 1_000_000, "exp": 1_000_120}
    identity = check(TokenVerifier(KEY), mint_token(KEY, "alice", name="Alice"))
    assert (identity.user_id, identity.name, identity.grant) == ("alice", "Alice", None)


def test_a_minted_grant_is_a_grant_to_the_service() -> None:
    value = mint_grant(KEY, "alice", 50, "level-7", metric="lap_ms")
    assert check(TokenVerifier(KEY), value).grant == Grant(50, "level-7", "lap_ms")
    assert client.GRANT_TYPE == verify.GRANT_TYPE
    default = mint_grant(KEY, "alice", 5, "a")
    assert "metric" not in jwt.decode(default, KEY, algorithms=["HS256"])
    named = check(TokenVerifier(KEY), mint_grant(KEY, "alice", 5, "a", name="Alice"))
    assert (named.name, named.grant) == ("Alice", Grant(5, "a"))


@pytest.mark.parametrize("pair", [rsa_key, ed_key], ids=["RS256", "EdDSA"])
def test_a_private_key_signs_what_its_public_half_verifies(pair: Callable[[], Any]) -> None:
    keys = pair()
    verifier = TokenVerifier(public_key=keys.public, algorithms=[keys.algorithm], audience=AUDIENCE)
    token = mint_token(
        keys.private, "bob", algorithm=keys.algorithm, audience=AUDIENCE, key_id="k1"
    )
    assert check(verifier, token).user_id == "bob"
    assert jwt.get_unverified_header(token)["kid"] == "k1"
    grant = mint_grant(keys.private, "bob", 3, "g-1", algorithm=keys.algorithm, audience=AUDIENCE)
    assert check(verifier, grant).grant == Grant(3, "g-1")


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(lambda: mint_token("too-short", "alice"), ValueError, id="short-secret"),
        pytest.param(lambda: mint_token(KEY, "alice", algorithm="none"), ValueError, id="alg"),
        pytest.param(lambda: mint_token(KEY, "alice", ttl=0), ValueError, id="ttl-zero"),
        pytest.param(lambda: mint_grant(KEY, "alice", 5, ""), ValueError, id="no-action"),
        pytest.param(lambda: mint_grant(KEY, "alice", True, "a"), TypeError, id="bool-delta"),
        pytest.param(lambda: mint_token(rsa_key().private, "alice"), TypeError, id="hs-with-pem"),
    ],
)
def test_minting_refuses_what_the_service_would(call: Callable[[], str], error: type) -> None:
    with pytest.raises(error):
        call()
