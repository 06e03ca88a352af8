"""``auth.mint``: what it signs, the verifier accepts."""

from __future__ import annotations

import asyncio
import time

import jwt

from scoreboard.auth.mint import mint
from scoreboard.auth.verify import Identity, TokenVerifier
from tests.support.server import SECRET

KEY = SECRET.encode()
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


def test_mint_round_trips_through_the_verifier() -> None:
    value = mint(KEY, "alice", ttl=120, name="Alice", audience="sb", issuer="me")
    identity = check(TokenVerifier(KEY, audience="sb", issuer="me"), value)
    assert (identity.user_id, identity.name) == ("alice", "Alice")
    assert 110 < identity.expires_at - time.time() <= 120
    assert jwt.get_unverified_header(value)["alg"] == "HS256"
