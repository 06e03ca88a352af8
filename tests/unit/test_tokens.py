"""TokenVerifier (allow-list, required claims, the verified-token cache, aud/iss), mint, and the
generated secret."""

from __future__ import annotations

import stat
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest

from scoreboard.errors import Unauthorized
from scoreboard.settings import Settings
from scoreboard.tokens import Identity, TokenVerifier, load_or_create_secret, mint
from tests.support.server import SECRET
from tests.support.tokens import token

KEY = SECRET.encode()
OTHER = "another-secret-that-is-long-enough-0123456789"


class Clock:
    """Moves the wall clock for both the verifier's cache and PyJWT's claim checks."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.offset = 0.0
        real_time = time.time
        clock = self

        class ShiftedDatetime(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:
                return datetime.fromtimestamp(real_time() + clock.offset, tz or UTC)

        monkeypatch.setattr(time, "time", lambda: real_time() + self.offset)
        monkeypatch.setattr(jwt.api_jwt, "datetime", ShiftedDatetime)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def test_a_valid_token_proves_its_subject_and_name() -> None:
    identity = TokenVerifier(KEY).verify(token("alice", name="Alice"))
    assert identity.user_id == "alice"
    assert identity.name == "Alice"
    assert identity.expires_at > time.time()


def test_a_token_without_name_has_none() -> None:
    assert TokenVerifier(KEY).verify(token("alice")).name is None


def test_a_long_name_is_cut_to_the_column_size() -> None:
    assert TokenVerifier(KEY).verify(token("alice", name="n" * 500)).name == "n" * 128


@pytest.mark.parametrize(
    ("forged", "code"),
    [
        pytest.param(lambda: token("alice", secret=OTHER), "token_invalid", id="wrong-key"),
        pytest.param(lambda: token("alice", ttl=-5), "token_expired", id="expired"),
        pytest.param(
            lambda: token("alice", nbf=int(time.time()) + 60),
            "token_not_yet_valid",
            id="nbf-future",
        ),
        pytest.param(
            lambda: jwt.encode({"sub": "alice"}, KEY, algorithm="HS256"),
            "token_invalid",
            id="no-exp",
        ),
        pytest.param(
            lambda: jwt.encode({"exp": int(time.time()) + 60}, KEY, algorithm="HS256"),
            "token_invalid",
            id="no-sub",
        ),
        pytest.param(
            lambda: jwt.encode(
                {"sub": "alice", "exp": int(time.time()) + 60}, None, algorithm="none"
            ),
            "token_invalid",
            id="alg-none",
        ),
        pytest.param(lambda: token("alice", name=5), "token_invalid", id="name-not-a-string"),
        pytest.param(lambda: "not.a.token", "token_invalid", id="garbage"),
    ],
)
def test_refused_tokens(forged: Any, code: str) -> None:
    value = forged()
    with pytest.raises(Unauthorized) as caught:
        TokenVerifier(KEY).verify(value)
    assert caught.value.code == code
    assert value not in caught.value.message


def test_only_the_allow_listed_algorithm_passes_even_with_the_right_key() -> None:
    claims = {"sub": "alice", "exp": int(time.time()) + 60}
    hs384 = jwt.encode(claims, KEY, algorithm="HS384")  # SECRET is 49 bytes: enough for HS384
    with pytest.raises(Unauthorized):
        TokenVerifier(KEY).verify(hs384)


# -- the cache ---------------------------------------------------------------------------------


def test_a_second_verify_of_the_same_token_is_a_cache_hit() -> None:
    verifier = TokenVerifier(KEY)
    value = token("alice")
    first = verifier.verify(value)
    assert verifier.verify(value) is first


def test_different_tokens_of_one_user_are_verified_separately() -> None:
    verifier = TokenVerifier(KEY)
    a, b = token("alice", name="A"), token("alice", name="B")
    assert verifier.verify(a).name == "A"
    assert verifier.verify(b).name == "B"


def test_a_tampered_copy_of_a_cached_token_is_verified_in_full() -> None:
    verifier = TokenVerifier(KEY)
    genuine = token("alice")
    verifier.verify(genuine)
    header, _, signature = genuine.split(".")
    other_payload = token("bob").split(".")[1]
    with pytest.raises(Unauthorized):
        verifier.verify(f"{header}.{other_payload}.{signature}")
    assert verifier.verify(genuine).user_id == "alice"


def test_a_cached_token_stops_working_at_its_exp(clock: Clock) -> None:
    verifier = TokenVerifier(KEY)
    value = token("alice", ttl=60)
    verifier.verify(value)
    clock.advance(30)
    assert verifier.verify(value).user_id == "alice"
    clock.advance(31)
    with pytest.raises(Unauthorized) as caught:
        verifier.verify(value)
    assert caught.value.code == "token_expired"


def test_a_cache_hit_does_not_outlive_exp_even_by_a_second(clock: Clock) -> None:
    verifier = TokenVerifier(KEY)
    value = token("alice", ttl=10)
    first = verifier.verify(value)
    clock.advance(first.expires_at - time.time())  # exactly at exp: expired (exp <= now)
    with pytest.raises(Unauthorized):
        verifier.verify(value)


def test_a_cache_hit_is_an_identity_that_was_verified() -> None:
    """What the cache returns is what a full verification returned."""
    verifier = TokenVerifier(KEY)
    value = token("carol", name="Carol")
    assert verifier.verify(value) == verifier.verify(value)
    assert verifier.verify(value) == TokenVerifier(KEY).verify(value)
    assert isinstance(verifier.verify(value), Identity)


# -- audience and issuer -----------------------------------------------------------------------


def test_audience_is_required_when_configured() -> None:
    verifier = TokenVerifier(KEY, audience="scoreboard")
    assert verifier.verify(token("alice", aud="scoreboard")).user_id == "alice"
    assert verifier.verify(token("bob", aud=["other", "scoreboard"])).user_id == "bob"
    for claims in ({}, {"aud": "other"}, {"aud": ["other"]}):
        with pytest.raises(Unauthorized):
            verifier.verify(token("alice", **claims))


def test_issuer_is_required_when_configured() -> None:
    verifier = TokenVerifier(KEY, issuer="https://game.example")
    assert verifier.verify(token("alice", iss="https://game.example")).user_id == "alice"
    for claims in ({}, {"iss": "https://evil.example"}, {"iss": "https://game.example/"}):
        with pytest.raises(Unauthorized):
            verifier.verify(token("alice", **claims))


def test_audience_and_issuer_are_ignored_when_not_configured() -> None:
    verifier = TokenVerifier(KEY)
    assert verifier.verify(token("alice", aud="anything", iss="anyone")).user_id == "alice"


# -- mint --------------------------------------------------------------------------------------


def test_mint_round_trips_through_the_verifier() -> None:
    value = mint(KEY, "alice", ttl=120, name="Alice", audience="sb", issuer="me")
    identity = TokenVerifier(KEY, audience="sb", issuer="me").verify(value)
    assert (identity.user_id, identity.name) == ("alice", "Alice")
    assert 110 < identity.expires_at - time.time() <= 120
    assert jwt.get_unverified_header(value)["alg"] == "HS256"


# -- the generated secret ----------------------------------------------------------------------


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        data_dir=tmp_path / "data",
        **values,
    )


def test_a_configured_secret_is_used_as_is(tmp_path: Path) -> None:
    assert load_or_create_secret(_settings(tmp_path, jwt_secret=SECRET)) == KEY
    assert not (tmp_path / "data").exists()


def test_a_secret_is_generated_once_private_and_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    first = load_or_create_secret(settings)
    files = list((tmp_path / "data").iterdir())
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert len(first) >= 32
    assert "SCOREBOARD_JWT_SECRET" in caplog.text
    assert first.decode() not in caplog.text
    assert load_or_create_secret(settings) == first


def test_a_short_secret_in_the_data_folder_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    load_or_create_secret(settings)
    (secret_file,) = (tmp_path / "data").iterdir()
    secret_file.write_bytes(b"short\n")
    with pytest.raises(ValueError, match="shorter"):
        load_or_create_secret(settings)
