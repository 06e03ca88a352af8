"""Authorization modes over HTTP: score grants (``SCOREBOARD_AUTH_MODE=grant``) applied at most
once, login tokens and grants never standing in for each other, and tokens verified with an RS256
public key (PEM file) or a JWKS served from 127.0.0.1. The refusals themselves are catalogued in
``test_security_catalog.py``; this module shows the accepted paths and the replay rule."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from scoreboard.auth.mint import mint
from scoreboard.auth.verify import GRANT_TYPE, Grant
from tests.api.conftest import UPDATE, Api, ApiFactory, assert_error
from tests.support.jwks import (
    AUDIENCE,
    ISSUER,
    KeyServer,
    claims,
    ec_key,
    ed_key,
    jwks,
    rsa_key,
    serve_keys,
)
from tests.support.server import SECRET
from tests.support.timing import scaled
from tests.support.tokens import token


def grant(user_id: str, delta: int, act: str, **kwargs: Any) -> str:
    return mint(SECRET.encode(), user_id, ttl=300, grant=Grant(delta, act), **kwargs)


async def post(api: Api, body: dict[str, Any], **headers: str) -> Any:
    return await api.client.post(UPDATE, json=body, headers=headers)


# -- grant mode --------------------------------------------------------------------------------


def main(score: int, rank: int) -> dict[str, dict[str, object]]:
    """The answer's ``boards``: the seed's one board, ``main``, all time."""
    return {"main": {"period": "all", "score": score, "rank": rank}}


async def test_a_grant_is_applied_once_under_its_act(make_api: ApiFactory) -> None:
    async with make_api(auth_mode="grant") as api:
        value = grant("alice", 40, "quest-7")
        body = {"user_id": "alice", "score_delta": 40, "auth_token": value}
        first = await post(api, body)
        assert first.status_code == 200, first.text
        assert first.json() == {
            "user_id": "alice",
            "new_score": 40,
            "rank": 1,
            "boards": main(40, 1),
        }
        assert api.rows("SELECT user_id, score_delta, action_id FROM scores") == [
            ("alice", 40, "quest-7")
        ]
        before = await api.state()

        replays = [await post(api, body) for _ in range(3)]
        replays.append(await post(api, {**body, "action_id": "quest-7"}))
        replays.append(
            await post(
                api, {"user_id": "alice", "score_delta": 40}, authorization=f"Bearer {value}"
            )
        )

        assert [r.status_code for r in replays] == [200] * 5
        assert all(r.json() == first.json() for r in replays)
        assert await api.state() == before  # no row, no total, no board change (seq)


async def test_a_fresh_grant_for_a_used_act_is_still_a_replay(make_api: ApiFactory) -> None:
    """The idempotency key is the action, not the token string: a re-minted grant for the
    same action (same delta) adds nothing; with another delta it is a 409."""
    async with make_api(auth_mode="grant") as api:
        await post(
            api, {"user_id": "alice", "score_delta": 5, "auth_token": grant("alice", 5, "a")}
        )
        before = await api.state()
        again = grant("alice", 5, "a", name="Alice")
        assert again != grant("alice", 5, "a")
        response = await post(api, {"user_id": "alice", "score_delta": 5, "auth_token": again})
        assert response.status_code == 200
        assert response.json()["new_score"] == 5
        other = await post(
            api, {"user_id": "alice", "score_delta": 6, "auth_token": grant("alice", 6, "a")}
        )
        assert_error(other, 409)
        assert (await api.state()).score_rows == before.score_rows


async def test_grants_for_different_actions_add_up(make_api: ApiFactory) -> None:
    async with make_api(auth_mode="grant") as api:
        for i, delta in enumerate([3, 4, 5]):
            value = grant("bob", delta, f"act-{i}", name="Bob")
            response = await post(
                api, {"user_id": "bob", "score_delta": delta, "auth_token": value}
            )
            assert response.status_code == 200, response.text
        assert response.json()["new_score"] == 12
        assert (await api.top10())[0] == {
            "rank": 1,
            "user_id": "bob",
            "username": "Bob",
            "score": 12,
        }


async def test_a_grant_is_not_a_login_token_and_a_login_token_is_not_a_grant(
    make_api: ApiFactory,
) -> None:
    async with make_api() as api:  # user mode, the default
        refused = await post(
            api, {"user_id": "alice", "score_delta": 5, "auth_token": grant("alice", 5, "x")}
        )
        assert assert_error(refused, 401)["error"] == "grant_not_accepted"
        assert (await api.ok("alice", 5))["new_score"] == 5
    async with make_api(auth_mode="grant") as api:
        refused = await post(
            api, {"user_id": "alice", "score_delta": 5, "auth_token": token("alice")}
        )
        assert assert_error(refused, 401)["error"] == "grant_required"


async def test_the_grant_type_header_survives_other_issuers_libraries(make_api: ApiFactory) -> None:
    """A grant minted by plain PyJWT (as in the README) with the media-type spelling."""
    async with make_api(auth_mode="grant") as api:
        payload = {"sub": "alice", "exp": int(time.time()) + 300, "delta": 9, "act": "r-1"}
        value = jwt.encode(
            payload,
            SECRET,
            algorithm="HS256",
            headers={"typ": "application/" + GRANT_TYPE},
        )
        response = await post(api, {"user_id": "alice", "score_delta": 9, "auth_token": value})
        assert response.status_code == 200, response.text


def cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    env.update(SCOREBOARD_JWT_SECRET=SECRET, SCOREBOARD_AUTH_MODE="grant")
    return subprocess.run(
        [sys.executable, "-m", "scoreboard", "token", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )


async def test_the_cli_mints_grants_the_server_accepts(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    result = cli(tmp_path, "--grant", "--delta", "25", "--action", "boss-1", "carol")
    assert result.returncode == 0, result.stderr
    value = result.stdout.strip()
    assert jwt.get_unverified_header(value)["typ"] == GRANT_TYPE
    payload = jwt.decode(value, SECRET, algorithms=["HS256"])
    assert (payload["sub"], payload["delta"], payload["act"]) == ("carol", 25, "boss-1")
    assert payload["exp"] - payload["iat"] == 300
    async with make_api(auth_mode="grant") as api:
        response = await post(api, {"user_id": "carol", "score_delta": 25, "auth_token": value})
        assert response.status_code == 200, response.text
        assert api.rows("SELECT action_id FROM scores") == [("boss-1",)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--grant", "--delta", "5", "carol"], "--action", id="no-action"),
        pytest.param(["--grant", "--action", "a", "carol"], "--delta", id="no-delta"),
        pytest.param(["--delta", "5", "carol"], "--grant", id="delta-without-grant"),
        pytest.param(["--ttl", "90000", "carol"], "MAX_TTL", id="ttl-over-max"),
        pytest.param(["--grant", "--delta", "5", "--action", "a\tb", "c"], "--action", id="tab"),
    ],
)
def test_the_cli_refuses_incomplete_grants_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = cli(tmp_path, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert message in result.stderr


# -- public keys -------------------------------------------------------------------------------


async def test_rs256_tokens_verify_with_a_pem_public_key(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    pair = rsa_key()
    pem = pair.write_pem(tmp_path)
    async with make_api(jwt_public_key=pem, jwt_issuer=ISSUER, jwt_audience=AUDIENCE) as api:
        body = {"user_id": "alice", "score_delta": 5, "auth_token": pair.sign(claims("alice"))}
        response = await post(api, body)
        assert response.status_code == 200, response.text
        hs = await post(api, {**body, "auth_token": token("alice", iss=ISSUER, aud=AUDIENCE)})
        assert_error(hs, 401)  # the secret is configured, but HS256 is not in the allow-list


async def test_an_es256_grant_verifies_with_a_pem_public_key(
    make_api: ApiFactory, tmp_path: Path
) -> None:
    pair = ec_key()
    async with make_api(
        auth_mode="grant", jwt_public_key=pair.write_pem(tmp_path), jwt_audience=AUDIENCE
    ) as api:
        value = pair.sign(claims("dan", 300, delta=8, act="a-1"), headers={"typ": GRANT_TYPE})
        response = await post(api, {"user_id": "dan", "score_delta": 8, "auth_token": value})
        assert response.status_code == 200, response.text


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    yield from serve_keys()


async def test_tokens_verify_with_keys_from_a_jwks_url(
    make_api: ApiFactory, key_server: KeyServer
) -> None:
    key_server.documents["/jwks.json"] = jwks(rsa_key(), ec_key(), ed_key())
    async with make_api(jwks_url=key_server.url(), jwt_audience=AUDIENCE) as api:
        for i, pair in enumerate([rsa_key(), ec_key(), ed_key()]):
            value = pair.sign(claims(f"user{i}"))
            response = await post(
                api, {"user_id": f"user{i}", "score_delta": 1 + i, "auth_token": value}
            )
            assert response.status_code == 200, response.text
        assert key_server.count() == 1


async def test_an_unreachable_key_server_is_503_and_changes_nothing(
    make_api: ApiFactory, key_server: KeyServer
) -> None:
    key_server.status = 500
    async with make_api(jwks_url=key_server.url(), jwt_audience=AUDIENCE) as api:
        before = await api.state()
        value = rsa_key().sign(claims("alice"))
        response = await post(api, {"user_id": "alice", "score_delta": 1, "auth_token": value})
        assert assert_error(response, 503)["error"] == "unavailable"
        assert await api.state() == before


async def test_refused_grants_and_tokens_never_reach_the_log(
    make_api: ApiFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    async with make_api(auth_mode="grant") as api:
        refused = [grant("alice", 6, "q"), grant("bob", 5, "q"), token("alice")]
        accepted = grant("alice", 5, "q")
        for value in [*refused, accepted, accepted]:
            await post(api, {"user_id": "alice", "score_delta": 5, "auth_token": value})
    reasons = [getattr(r, "reason", None) for r in caplog.records if r.msg == "update rejected"]
    assert reasons == ["grant_mismatch", "wrong_user", "grant_required"]
    for value in [*refused, accepted]:
        assert value not in caplog.text
        for record in caplog.records:
            assert all(value not in str(v) for v in record.__dict__.values())
