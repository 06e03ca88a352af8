"""TokenVerifier (allow-list, key kinds, required claims, the verified-token cache, aud/iss, leeway,
max TTL, grants), JwksKeys (fetch and refresh policy, against a key server on 127.0.0.1), the token
settings, mint, and the generated secret."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from scoreboard.errors import Unauthorized, Unavailable
from scoreboard.settings import Settings
from scoreboard.tokens import (
    GRANT_TYPE,
    Grant,
    Identity,
    JwksKeys,
    TokenVerifier,
    load_or_create_secret,
    mint,
    verifier_from_settings,
)
from tests.support.jwks import (
    AUDIENCE,
    GRANT_HEADER,
    ISSUER,
    KeyPair,
    KeyServer,
    b64,
    claims,
    ec_key,
    ed_key,
    hmac_signed,
    jwks,
    rsa_key,
    serve_keys,
    unsigned,
)
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


def check(verifier: TokenVerifier, value: str) -> Identity:
    """One verification, run to completion (the HS256 path never awaits anything)."""
    return asyncio.run(verifier.verify(value))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def test_a_valid_token_proves_its_subject_and_name() -> None:
    identity = check(TokenVerifier(KEY), token("alice", name="Alice"))
    assert identity.user_id == "alice"
    assert identity.name == "Alice"
    assert identity.expires_at > time.time()


def test_a_token_without_name_has_none() -> None:
    assert check(TokenVerifier(KEY), token("alice")).name is None


def test_a_long_name_is_cut_to_the_column_size() -> None:
    assert check(TokenVerifier(KEY), token("alice", name="n" * 500)).name == "n" * 128


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
        check(TokenVerifier(KEY), value)
    assert caught.value.code == code
    assert value not in caught.value.message


def test_only_the_allow_listed_algorithm_passes_even_with_the_right_key() -> None:
    claims = {"sub": "alice", "exp": int(time.time()) + 60}
    hs384 = jwt.encode(claims, KEY, algorithm="HS384")  # SECRET is 49 bytes: enough for HS384
    with pytest.raises(Unauthorized):
        check(TokenVerifier(KEY), hs384)


# -- the cache ---------------------------------------------------------------------------------


def test_a_second_verify_of_the_same_token_is_a_cache_hit() -> None:
    verifier = TokenVerifier(KEY)
    value = token("alice")
    first = check(verifier, value)
    assert check(verifier, value) is first


def test_different_tokens_of_one_user_are_verified_separately() -> None:
    verifier = TokenVerifier(KEY)
    a, b = token("alice", name="A"), token("alice", name="B")
    assert check(verifier, a).name == "A"
    assert check(verifier, b).name == "B"


def test_a_tampered_copy_of_a_cached_token_is_verified_in_full() -> None:
    verifier = TokenVerifier(KEY)
    genuine = token("alice")
    check(verifier, genuine)
    header, _, signature = genuine.split(".")
    other_payload = token("bob").split(".")[1]
    with pytest.raises(Unauthorized):
        check(verifier, f"{header}.{other_payload}.{signature}")
    assert check(verifier, genuine).user_id == "alice"


def test_a_cached_token_stops_working_at_its_exp(clock: Clock) -> None:
    verifier = TokenVerifier(KEY)
    value = token("alice", ttl=60)
    check(verifier, value)
    clock.advance(30)
    assert check(verifier, value).user_id == "alice"
    clock.advance(31)
    with pytest.raises(Unauthorized) as caught:
        check(verifier, value)
    assert caught.value.code == "token_expired"


def test_a_cache_hit_does_not_outlive_exp_even_by_a_second(clock: Clock) -> None:
    verifier = TokenVerifier(KEY)
    value = token("alice", ttl=10)
    first = check(verifier, value)
    clock.advance(first.expires_at - time.time())  # exactly at exp: expired (exp <= now)
    with pytest.raises(Unauthorized):
        check(verifier, value)


def test_a_cache_hit_is_an_identity_that_was_verified() -> None:
    """What the cache returns is what a full verification returned."""
    verifier = TokenVerifier(KEY)
    value = token("carol", name="Carol")
    assert check(verifier, value) == check(verifier, value)
    assert check(verifier, value) == check(TokenVerifier(KEY), value)
    assert isinstance(check(verifier, value), Identity)


# -- audience and issuer -----------------------------------------------------------------------


def test_audience_is_required_when_configured() -> None:
    verifier = TokenVerifier(KEY, audience="scoreboard")
    assert check(verifier, token("alice", aud="scoreboard")).user_id == "alice"
    assert check(verifier, token("bob", aud=["other", "scoreboard"])).user_id == "bob"
    for extra in ({}, {"aud": "other"}, {"aud": ["other"]}):
        with pytest.raises(Unauthorized):
            check(verifier, token("alice", **extra))


def test_issuer_is_required_when_configured() -> None:
    verifier = TokenVerifier(KEY, issuer="https://game.example")
    assert check(verifier, token("alice", iss="https://game.example")).user_id == "alice"
    for extra in ({}, {"iss": "https://evil.example"}, {"iss": "https://game.example/"}):
        with pytest.raises(Unauthorized):
            check(verifier, token("alice", **extra))


def test_audience_and_issuer_are_ignored_when_not_configured() -> None:
    verifier = TokenVerifier(KEY)
    assert check(verifier, token("alice", aud="anything", iss="anyone")).user_id == "alice"


# -- mint --------------------------------------------------------------------------------------


def test_mint_round_trips_through_the_verifier() -> None:
    value = mint(KEY, "alice", ttl=120, name="Alice", audience="sb", issuer="me")
    identity = check(TokenVerifier(KEY, audience="sb", issuer="me"), value)
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
    secret_file.write_bytes(b"tiny-s3cret\n")
    with pytest.raises(ValueError, match="shorter") as caught:
        load_or_create_secret(settings)
    assert str(secret_file) in str(caught.value)
    assert "tiny-s3cret" not in str(caught.value)


def _secret_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "data" / "jwt_secret"
    path.parent.mkdir()
    path.write_bytes(KEY + b"\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    "mode",
    [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666, 0o700 | 0o070],
    ids=lambda m: f"{m:04o}",
)
def test_a_secret_file_open_to_group_or_others_is_refused_as_ssh_does(
    tmp_path: Path, mode: int
) -> None:
    """Anyone who can read it can sign tokens for any user; anyone who can write it can choose
    the secret. Refused, not fixed silently: the operator should learn that it was exposed."""
    path = _secret_file(tmp_path, mode)
    with pytest.raises(ValueError, match="chmod 600") as caught:
        load_or_create_secret(_settings(tmp_path))
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert f"{mode:04o}" in message
    assert f"chmod 600 {path}" in message
    assert SECRET not in message
    assert stat.S_IMODE(path.stat().st_mode) == mode  # left as it was
    assert path.read_bytes() == KEY + b"\n"


@pytest.mark.parametrize("mode", [0o600, 0o400], ids=lambda m: f"{m:04o}")
def test_a_secret_file_private_to_its_owner_is_used(tmp_path: Path, mode: int) -> None:
    _secret_file(tmp_path, mode)
    assert load_or_create_secret(_settings(tmp_path)) == KEY


def test_a_secret_path_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "data" / "jwt_secret").mkdir(parents=True)
    with pytest.raises(ValueError, match="jwt_secret") as caught:
        load_or_create_secret(_settings(tmp_path))
    assert "\n" not in str(caught.value)


def test_a_secret_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the data folder should be")
    with pytest.raises(ValueError, match="data") as caught:
        load_or_create_secret(_settings(tmp_path))
    assert "\n" not in str(caught.value)


# -- asymmetric algorithms and the allow-list --------------------------------------------------

RSA, EC, ED = rsa_key(), ec_key(), ed_key()


@pytest.mark.parametrize("pair", [RSA, EC, ED], ids=lambda p: p.algorithm)
def test_each_asymmetric_algorithm_verifies_with_its_public_key(pair: KeyPair) -> None:
    verifier = TokenVerifier(public_key=pair.public, algorithms=[pair.algorithm])
    identity = check(verifier, pair.sign(claims("alice", name="Alice")))
    assert (identity.user_id, identity.name, identity.grant) == ("alice", "Alice", None)


@pytest.mark.parametrize(
    ("allowed", "pair"),
    [
        pytest.param(["RS256"], EC, id="ES256-token-RS256-allowed"),
        pytest.param(["ES256"], RSA, id="RS256-token-ES256-allowed"),
        pytest.param(["EdDSA"], RSA, id="RS256-token-EdDSA-allowed"),
    ],
)
def test_an_algorithm_outside_the_allow_list_is_refused_even_with_a_fitting_key(
    allowed: list[str], pair: KeyPair
) -> None:
    verifier = TokenVerifier(public_key=pair.public, algorithms=allowed)
    with pytest.raises(Unauthorized):
        check(verifier, pair.sign(claims()))


def test_rs384_with_the_right_key_is_refused() -> None:
    verifier = TokenVerifier(public_key=RSA.public, algorithms=["RS256"])
    with pytest.raises(Unauthorized):
        check(verifier, RSA.sign(claims(), algorithm="RS384"))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_case_is_refused_by_an_asymmetric_verifier(alg: str) -> None:
    verifier = TokenVerifier(public_key=RSA.public, algorithms=["RS256"])
    with pytest.raises(Unauthorized):
        check(verifier, unsigned(alg, claims()))


@pytest.mark.parametrize(
    "key_text",
    [
        pytest.param(lambda: RSA.public_pem(), id="pem"),
        pytest.param(lambda: RSA.public_pem().strip(), id="pem-stripped"),
        pytest.param(lambda: json.dumps(RSA.jwk()).encode(), id="jwk-json"),
    ],
)
def test_hs256_keyed_with_the_public_key_never_verifies(key_text: Any) -> None:
    """Algorithm confusion: the attacker knows the public key and uses it as an HMAC secret.
    Refused when HS256 is not allowed, and also when it is (with a secret of its own)."""
    forged = hmac_signed({"alg": "HS256", "typ": "JWT"}, claims(), key_text())
    for verifier in (
        TokenVerifier(public_key=RSA.public, algorithms=["RS256"]),
        TokenVerifier(KEY, public_key=RSA.public, algorithms=["HS256", "RS256"]),
    ):
        with pytest.raises(Unauthorized):
            check(verifier, forged)


def test_with_both_kinds_allowed_each_token_is_checked_with_its_own_key() -> None:
    verifier = TokenVerifier(KEY, public_key=EC.public, algorithms=["HS256", "ES256"])
    assert check(verifier, token("alice")).user_id == "alice"
    assert check(verifier, EC.sign(claims("bob"))).user_id == "bob"


@pytest.mark.parametrize("name", ["jku", "jwk", "x5u", "x5c"])
def test_a_token_naming_its_own_key_is_refused_even_when_genuine(name: str) -> None:
    value: Any = {"jku": "http://127.0.0.1:9/jwks.json", "x5u": "http://127.0.0.1:9/cert"}.get(
        name, RSA.jwk() if name == "jwk" else ["MIIB"]
    )
    verifier = TokenVerifier(public_key=RSA.public, algorithms=["RS256"])
    with pytest.raises(Unauthorized, match=name):
        check(verifier, RSA.sign(claims(), headers={name: value}))


@pytest.mark.parametrize(
    "crit",
    [
        pytest.param(
            {"crit": ["urn:example:must-check"], "urn:example:must-check": 1}, id="unknown"
        ),
        pytest.param({"crit": ["exp"]}, id="registered-name"),
        pytest.param({"crit": []}, id="empty"),
    ],
)
def test_a_crit_header_is_refused(crit: dict[str, Any]) -> None:
    for verifier, value in (
        (TokenVerifier(KEY), jwt.encode(claims(), KEY, algorithm="HS256", headers=crit)),
        (
            TokenVerifier(public_key=ED.public, algorithms=["EdDSA"]),
            ED.sign(claims(), headers=crit),
        ),
    ):
        with pytest.raises(Unauthorized):
            check(verifier, value)


def test_even_the_crit_extension_pyjwt_knows_is_refused() -> None:
    """We implement no extension, so every ``crit`` is refused; PyJWT alone accepts ``b64``."""
    value = hmac_signed({"alg": "HS256", "crit": ["b64"], "b64": True}, claims(), KEY)
    assert jwt.decode(value, KEY, algorithms=["HS256"], audience=AUDIENCE)["sub"] == "alice"
    with pytest.raises(Unauthorized, match="critical"):
        check(TokenVerifier(KEY), value)


def test_a_pem_verifier_ignores_kid() -> None:
    """With one configured key there is nothing to choose; the signature decides."""
    verifier = TokenVerifier(public_key=RSA.public, algorithms=["RS256"])
    assert check(verifier, RSA.sign(claims(), kid="whatever")).user_id == "alice"
    with pytest.raises(Unauthorized):
        check(verifier, rsa_key("other-rsa").sign(claims(), kid=RSA.kid))


# -- claims: iss/aud exact, leeway, max TTL ----------------------------------------------------


@pytest.mark.parametrize(
    "iss",
    [ISSUER + ".evil", ISSUER + "/", ISSUER[:-1], ISSUER.upper(), [ISSUER], None],
    ids=["longer", "slash", "prefix", "upper", "list", "missing"],
)
def test_issuer_is_an_exact_match(iss: Any) -> None:
    verifier = TokenVerifier(KEY, issuer=ISSUER)
    payload = claims()
    if iss is None:
        del payload["iss"]
    else:
        payload["iss"] = iss
    with pytest.raises(Unauthorized):
        check(verifier, hmac_signed({"alg": "HS256", "typ": "JWT"}, payload, KEY))
    assert check(verifier, jwt.encode(claims(), KEY, algorithm="HS256")).user_id == "alice"


@pytest.mark.parametrize(
    "aud",
    [AUDIENCE + "x", AUDIENCE[:-1], [AUDIENCE + "x"], "", None],
    ids=["longer", "prefix", "list-without", "empty", "missing"],
)
def test_audience_is_an_exact_match(aud: Any) -> None:
    verifier = TokenVerifier(KEY, audience=AUDIENCE)
    payload = claims()
    if aud is None:
        del payload["aud"]
    else:
        payload["aud"] = aud
    with pytest.raises(Unauthorized):
        check(verifier, jwt.encode(payload, KEY, algorithm="HS256"))


def test_leeway_forgives_that_many_seconds_of_skew_and_no_more() -> None:
    late = token("alice", ttl=-5)
    early = token("alice", iat=int(time.time()) + 5, nbf=int(time.time()) + 5)
    lenient = TokenVerifier(KEY, leeway=10)
    assert check(lenient, late).user_id == "alice"
    assert check(lenient, early).user_id == "alice"
    strict = TokenVerifier(KEY)
    for value in (late, early):
        with pytest.raises(Unauthorized):
            check(strict, value)


def test_an_iat_in_the_future_is_refused() -> None:
    with pytest.raises(Unauthorized) as caught:
        check(TokenVerifier(KEY), token("alice", iat=int(time.time()) + 600))
    assert caught.value.code == "token_not_yet_valid"


def test_a_token_living_longer_than_max_ttl_is_refused() -> None:
    verifier = TokenVerifier(KEY, max_ttl=3600)
    assert check(verifier, token("alice", ttl=3590)).user_id == "alice"
    with pytest.raises(Unauthorized) as caught:
        check(verifier, token("alice", ttl=3700))
    assert caught.value.code == "token_lifetime_too_long"
    with pytest.raises(Unauthorized):
        check(TokenVerifier(KEY), token("alice", ttl=2 * 86_400))  # the default: one day


# -- grants ------------------------------------------------------------------------------------


def test_a_grant_carries_its_delta_and_action() -> None:
    value = mint(KEY, "alice", ttl=60, grant=Grant(delta=7, action_id="level-3"))
    assert jwt.get_unverified_header(value)["typ"] == GRANT_TYPE
    identity = check(TokenVerifier(KEY), value)
    assert identity.grant == Grant(7, "level-3")
    assert identity.user_id == "alice"


@pytest.mark.parametrize("typ", [GRANT_TYPE.upper(), "application/" + GRANT_TYPE])
def test_the_grant_type_is_compared_as_rfc_7515_asks(typ: str) -> None:
    value = jwt.encode(claims(delta=1, act="a"), KEY, algorithm="HS256", headers={"typ": typ})
    assert check(TokenVerifier(KEY), value).grant == Grant(1, "a")


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(claims(typ=GRANT_TYPE, delta=5, act="a"), id="typ-as-a-claim"),
        pytest.param(claims(delta=5, act="a"), id="no-typ"),
    ],
)
def test_grant_claims_without_the_grant_header_make_a_login_token(payload: Any) -> None:
    assert check(TokenVerifier(KEY), jwt.encode(payload, KEY, algorithm="HS256")).grant is None


@pytest.mark.parametrize(
    ("delta", "act"),
    [
        ("5", "a"),
        (5.0, "a"),
        (True, "a"),
        (None, "a"),
        (5, None),
        (5, 17),
        (5, ""),
        (5, "x" * 129),
        (5, "a\nb"),
    ],
)
def test_a_grant_with_bad_claims_is_refused(delta: Any, act: Any) -> None:
    payload = {k: v for k, v in claims(delta=delta, act=act).items() if v is not None}
    value = jwt.encode(payload, KEY, algorithm="HS256", headers=GRANT_HEADER)
    with pytest.raises(Unauthorized) as caught:
        check(TokenVerifier(KEY), value)
    assert caught.value.code == "token_invalid"


# -- JWKS --------------------------------------------------------------------------------------


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


# -- configuration -----------------------------------------------------------------------------

AUD = {"jwt_audience": AUDIENCE}
"""Required with a public key or JWKS URL (RFC 8725, 3.9)."""


def test_the_settings_derive_the_allow_list_from_the_keys(tmp_path: Path) -> None:
    assert _settings(tmp_path).token_algorithms == ("HS256",)
    pem = EC.write_pem(tmp_path)
    verifier = verifier_from_settings(_settings(tmp_path, jwt_public_key=pem, **AUD))
    assert verifier.algorithms == {"ES256"}
    assert not (tmp_path / "data").exists()  # no secret generated: HS256 is not in use
    jwks_settings = _settings(tmp_path, jwks_url="http://127.0.0.1:9/jwks.json", **AUD)
    assert set(verifier_from_settings(jwks_settings).algorithms) == {"RS256", "ES256", "EdDSA"}


def test_the_configured_verifier_applies_every_setting(tmp_path: Path) -> None:
    pem = RSA.write_pem(tmp_path)
    settings = _settings(
        tmp_path,
        jwt_public_key=pem,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
        jwt_leeway=10,
        jwt_max_ttl=600,
    )
    verifier = verifier_from_settings(settings)
    assert check(verifier, RSA.sign(claims("a", ttl=-5))).user_id == "a"  # within leeway
    for bad in (claims(ttl=900), claims(iss="x"), claims(aud="x")):
        with pytest.raises(Unauthorized):
            check(verifier, RSA.sign(bad))
    with pytest.raises(Unauthorized):
        check(verifier, jwt.encode(claims(), KEY, algorithm="HS256"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"jwt_algorithms": "none"}, "not one of", id="alg-none"),
        pytest.param({"jwt_algorithms": "hs256"}, "not one of", id="alg-lowercase"),
        pytest.param({"jwt_algorithms": "HS384"}, "not one of", id="alg-HS384"),
        pytest.param({"jwt_algorithms": " , "}, "at least one", id="alg-empty-list"),
        pytest.param({"jwt_algorithms": "RS256"}, "need", id="alg-without-key"),
        pytest.param({"jwt_leeway": 31}, "30", id="leeway-over-30"),
        pytest.param({"jwt_leeway": -1}, "0", id="leeway-negative"),
        pytest.param({"jwt_max_ttl": 0}, "0", id="max-ttl-zero"),
        pytest.param({"jwks_url": "file:///etc/passwd", **AUD}, "http", id="jwks-file-url"),
        pytest.param({"jwks_url": "ftp://keys.example/jwks", **AUD}, "http", id="jwks-ftp-url"),
        pytest.param({"jwks_url": "https://", **AUD}, "http", id="jwks-no-host"),
        pytest.param(
            {"jwt_public_key": "/nonexistent/key.pem", **AUD}, "cannot read", id="key-missing"
        ),
        pytest.param({"auth_mode": "admin"}, "user", id="auth-mode-unknown"),
    ],
)
def test_bad_token_settings_are_refused(tmp_path: Path, values: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _settings(tmp_path, **values)


def test_hs256_next_to_a_public_key_needs_an_explicit_secret(tmp_path: Path) -> None:
    pem = RSA.write_pem(tmp_path)
    with pytest.raises(ValidationError, match="SCOREBOARD_JWT_SECRET"):
        _settings(tmp_path, jwt_public_key=pem, jwt_algorithms="HS256,RS256", **AUD)
    with pytest.raises(ValidationError, match="not both"):
        _settings(tmp_path, jwt_public_key=pem, jwks_url="https://keys.example/jwks.json", **AUD)
    both = _settings(
        tmp_path, jwt_public_key=pem, jwt_algorithms="HS256,RS256", jwt_secret=SECRET, **AUD
    )
    assert verifier_from_settings(both).algorithms == {"HS256", "RS256"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(lambda: b"not a key", "not a PEM public key", id="garbage"),
        pytest.param(
            lambda: RSA.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            "not a PEM public key",
            id="private-key",
        ),
        pytest.param(
            lambda: KeyPair(
                "small",
                "RS256",
                rsa.generate_private_key(65537, 1024),  # noqa: S505 (the point of the test)
            ).public_pem(),
            "2048",
            id="rsa-1024",
        ),
        pytest.param(
            lambda: KeyPair("p384", "ES256", ec.generate_private_key(ec.SECP384R1())).public_pem(),
            "P-256",
            id="ec-p384",
        ),
    ],
)
def test_an_unusable_public_key_file_is_refused(tmp_path: Path, content: Any, message: str) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(content())
    with pytest.raises(ValueError, match=message):
        verifier_from_settings(_settings(tmp_path, jwt_public_key=path, **AUD))


def test_a_key_that_does_not_fit_the_configured_algorithms_is_refused(tmp_path: Path) -> None:
    pem = RSA.write_pem(tmp_path)
    with pytest.raises(ValueError, match="ES256"):
        verifier_from_settings(
            _settings(tmp_path, jwt_public_key=pem, jwt_algorithms="ES256", **AUD)
        )
