"""TokenVerifier (``auth.verify``): the allow-list, key kinds, required claims, the verified-token
cache, aud/iss, leeway, max TTL and grants. Time is the verifier's injected clock."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import jwt
import pytest

from scoreboard.auth.mint import mint
from scoreboard.auth.verify import GRANT_TYPE, Grant, Identity, TokenVerifier
from scoreboard.errors import Unauthorized
from tests.support.jwks import (
    AUDIENCE,
    GRANT_HEADER,
    ISSUER,
    KeyPair,
    claims,
    ec_key,
    ed_key,
    hmac_signed,
    rsa_key,
    unsigned,
)
from tests.support.server import SECRET
from tests.support.tokens import token

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


def test_a_cached_token_stops_working_at_its_exp() -> None:
    clock = Clock()
    verifier = TokenVerifier(KEY, clock=clock)
    value = token("alice", ttl=60)
    check(verifier, value)
    clock.advance(30)
    assert check(verifier, value).user_id == "alice"
    clock.advance(31)
    with pytest.raises(Unauthorized) as caught:
        check(verifier, value)
    assert caught.value.code == "token_expired"


def test_a_cache_hit_does_not_outlive_exp_even_by_a_second() -> None:
    clock = Clock()
    verifier = TokenVerifier(KEY, clock=clock)
    value = token("alice", ttl=10)
    first = check(verifier, value)
    clock.advance(first.expires_at - clock.now)  # exactly at exp: expired (exp <= now)
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
