"""``auth.jwks``: the fetch and refresh policy, against a key server on 127.0.0.1, through a
verifier."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from scoreboard.auth.jwks import JwksKeys
from scoreboard.auth.verify import Identity, TokenVerifier
from scoreboard.errors import Unauthorized, Unavailable
from tests.support.jwks import (
    KeyServer,
    b64,
    claims,
    ec_key,
    ed_key,
    hmac_signed,
    jwks,
    rsa_key,
    serve_keys,
)
from tests.support.server import SECRET

KEY = SECRET.encode()
RSA, EC, ED = rsa_key(), ec_key(), ed_key()
OTHER = "another-secret-that-is-long-enough-0123456789"


KEY = SECRET.encode()
OTHER = "another-secret-that-is-long-enough-0123456789"


class Clock:
    """The wall clock a verifier is given (seconds since the epoch), moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def check(verifier: TokenVerifier, value: str) -> Identity:
    """One verification, run to completion (the HS256 path never awaits anything)."""
    return asyncio.run(verifier.verify(value))


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    yield from serve_keys()


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def jwks_verifier(server: KeyServer, ticks: Ticks | None = None, **kwargs: Any) -> TokenVerifier:
    keys = JwksKeys(server.url(), clock=ticks or Ticks(), **kwargs)
    return TokenVerifier(jwks=keys, algorithms=["RS256", "ES256", "EdDSA"])


async def test_keys_are_fetched_once_and_chosen_by_kid(key_server: KeyServer) -> None:
    key_server.documents["/jwks.json"] = jwks(RSA, EC, ED)
    verifier = jwks_verifier(key_server)
    for pair in (RSA, EC, ED):
        assert (await verifier.verify(pair.sign(claims(pair.kid)))).user_id == pair.kid
    assert key_server.count() == 1


async def test_an_unknown_kid_refreshes_the_set_once_per_interval(key_server: KeyServer) -> None:
    """A rotation is picked up at once; a flood of made-up kids costs one fetch per interval."""
    key_server.documents["/jwks.json"] = jwks(RSA)
    ticks = Ticks()
    verifier = jwks_verifier(key_server, ticks, min_interval=30)
    await verifier.verify(RSA.sign(claims()))
    ticks.now += 31
    rotated = rsa_key("rsa-2")
    key_server.documents["/jwks.json"] = jwks(RSA, rotated)
    assert (await verifier.verify(rotated.sign(claims("bob")))).user_id == "bob"
    assert key_server.count() == 2
    for i in range(50):
        with pytest.raises(Unauthorized):
            await verifier.verify(RSA.sign(claims(), kid=f"made-up-{i}"))
    assert key_server.count() == 2
    ticks.now += 31
    with pytest.raises(Unauthorized):
        await verifier.verify(RSA.sign(claims(), kid="made-up-again"))
    assert key_server.count() == 3


async def test_concurrent_misses_share_one_fetch(key_server: KeyServer) -> None:
    key_server.documents["/jwks.json"] = jwks(RSA, EC)
    verifier = jwks_verifier(key_server)
    values = [pair.sign(claims(f"u{i}")) for i, pair in enumerate([RSA, EC] * 10)]
    identities = await asyncio.gather(*(verifier.verify(v) for v in values))
    assert [i.user_id for i in identities] == [f"u{i}" for i in range(20)]
    assert key_server.count() == 1


async def test_an_old_set_is_fetched_again(key_server: KeyServer) -> None:
    key_server.documents["/jwks.json"] = jwks(RSA)
    ticks = Ticks()
    verifier = jwks_verifier(key_server, ticks, max_age=600)
    await verifier.verify(RSA.sign(claims("a")))
    ticks.now += 601
    key_server.documents["/jwks.json"] = jwks(EC)  # RSA withdrawn
    with pytest.raises(Unauthorized):
        await verifier.verify(RSA.sign(claims("b")))
    assert key_server.count() == 2


async def test_a_key_server_down_keeps_the_keys_we_have(key_server: KeyServer) -> None:
    key_server.documents["/jwks.json"] = jwks(RSA)
    ticks = Ticks()
    verifier = jwks_verifier(key_server, ticks, max_age=600)
    await verifier.verify(RSA.sign(claims("a")))
    key_server.status = 500
    ticks.now += 601
    assert (await verifier.verify(RSA.sign(claims("b")))).user_id == "b"
    assert key_server.count() == 2


async def test_no_keys_at_all_is_unavailable_not_unauthorized(key_server: KeyServer) -> None:
    key_server.status = 503
    verifier = jwks_verifier(key_server)
    for _ in range(3):
        with pytest.raises(Unavailable):
            await verifier.verify(RSA.sign(claims()))
    assert key_server.count() == 1  # the interval holds for failures too


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b'{"keys": "x"}', id="keys-not-a-list"),
        pytest.param(b'{"keys": []}', id="empty"),
        pytest.param(
            json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "oct-1"}]}).encode(),
            id="only-symmetric",
        ),
        pytest.param(json.dumps({"keys": [RSA.jwk(use="enc")]}).encode(), id="only-encryption"),
        pytest.param(b'{"keys": [' + b" " * 300_000 + b"]}", id="oversized"),
    ],
)
async def test_an_unusable_key_set_gives_no_keys(key_server: KeyServer, document: bytes) -> None:
    key_server.raw = document
    with pytest.raises(Unavailable):
        await jwks_verifier(key_server).verify(RSA.sign(claims()))


async def test_a_symmetric_key_in_the_set_never_verifies(key_server: KeyServer) -> None:
    """An ``oct`` key published in the JWKS is public: nothing it signs may pass."""
    secret = b"a-shared-secret-published-by-mistake-0123456789"
    oct_jwk = {"kty": "oct", "k": b64(secret), "kid": "oct-1", "alg": "HS256"}
    key_server.documents["/jwks.json"] = jwks(RSA, extra=[oct_jwk])
    verifier = jwks_verifier(key_server)
    for header in ({"alg": "HS256", "kid": "oct-1"}, {"alg": "RS256", "kid": "oct-1"}):
        with pytest.raises(Unauthorized):
            await verifier.verify(hmac_signed(header, claims(), secret))


async def test_the_key_must_fit_the_algorithm_named(key_server: KeyServer) -> None:
    key_server.documents["/jwks.json"] = jwks(RSA, EC)
    verifier = jwks_verifier(key_server)
    with pytest.raises(Unauthorized):  # an ES256 token naming the RSA key
        await verifier.verify(EC.sign(claims(), kid=RSA.kid))
    with pytest.raises(Unauthorized):  # the RSA key naming itself, signed by another RSA key
        await verifier.verify(rsa_key("intruder").sign(claims(), kid=RSA.kid))


async def test_without_kid_only_a_single_fitting_key_is_used(key_server: KeyServer) -> None:
    key_server.documents["/jwks.json"] = jwks(RSA, EC)
    verifier = jwks_verifier(key_server)
    assert (await verifier.verify(EC.sign(claims("e"), kid=None))).user_id == "e"
    key_server.documents["/jwks.json"] = jwks(RSA, rsa_key("rsa-2"))
    other = jwks_verifier(key_server)
    with pytest.raises(Unauthorized):
        await other.verify(RSA.sign(claims(), kid=None))


async def test_a_jku_header_is_never_fetched(key_server: KeyServer) -> None:
    attacker = rsa_key("attacker")
    key_server.documents["/jwks.json"] = jwks(RSA)
    key_server.documents["/attacker.json"] = jwks(attacker)
    verifier = jwks_verifier(key_server)
    forged = attacker.sign(claims(), headers={"jku": key_server.url("/attacker.json")})
    with pytest.raises(Unauthorized):
        await verifier.verify(forged)
    assert key_server.count("/attacker.json") == 0
