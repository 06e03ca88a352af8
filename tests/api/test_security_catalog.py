"""The bad-input catalog, part two: forged and confused tokens under every key configuration and
authorization mode, and bad bodies that come with a *valid grant*. Each case asserts its status,
the ``{"error", "message"}`` body, and that nothing changed: the top 10, every users and scores
row, and the live board's ``seq`` (so no SCORE_UPDATE was broadcast).

Part one is ``test_rejections.py`` (HS256 in user mode: 75 bad bodies, 47 forged tokens, 13 bad
Authorization headers); nothing there is repeated here. The WebSocket cases (bad origins,
oversized and flooding frames) live with the live channel's tests.

Configurations ("profiles"), each a fresh app seeded with two accepted updates:

- ``hs-user``: HS256 secret, user mode (the default)
- ``hs-grant``: HS256 secret, grant mode
- ``rs-user``: RS256 public key from a PEM file, ``iss`` and ``aud`` required
- ``mixed``: HS256 secret *and* an RS256 public key allowed side by side, ``aud`` required
- ``jwks-user``: RS256/ES256/EdDSA keys from a JWKS served on 127.0.0.1, ``iss``/``aud`` required
- ``rs-grant``: RS256 public key, grant mode, ``iss``/``aud`` required
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from scoreboard.auth.mint import mint
from scoreboard.auth.verify import GRANT_TYPE, Grant
from tests.api.conftest import UPDATE, ApiFactory, assert_error
from tests.support.jwks import (
    AUDIENCE,
    GRANT_HEADER,
    ISSUER,
    KeyServer,
    b64,
    claims,
    ec_key,
    ed_key,
    grant_claims,
    hmac_signed,
    jwks,
    rsa_key,
    segment,
    serve_keys,
    unsigned,
)
from tests.support.server import SECRET
from tests.support.tokens import token

RSA, EC, ED = rsa_key(), ec_key(), ed_key()
ATTACKER = rsa_key("attacker")
HS = {"alg": "HS256", "typ": "JWT"}
PEM = RSA.public_pem()
ATTACKER_JWKS = "/attacker.json"


@dataclass(frozen=True)
class Ctx:
    """What a case may need to build its request."""

    profile: str
    key_server: KeyServer


@dataclass(frozen=True)
class Request:
    body: bytes | dict[str, Any]
    headers: dict[str, str] | None = None


def _profile_settings(profile: str, folder: Path, key_server: KeyServer) -> dict[str, Any]:
    strict = {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE}
    pem = RSA.write_pem(folder)
    return {
        "hs-user": {},
        "hs-grant": {"auth_mode": "grant"},
        "rs-user": {"jwt_public_key": pem, **strict},
        "mixed": {"jwt_public_key": pem, "jwt_algorithms": "HS256,RS256", "jwt_audience": AUDIENCE},
        "jwks-user": {"jwks_url": key_server.url(), **strict},
        "rs-grant": {"auth_mode": "grant", "jwt_public_key": pem, **strict},
    }[profile]


def valid_token(profile: str, user: str, delta: int = 5, act: str = "g-1") -> str:
    """A token the profile accepts for ``user`` (a grant for ``delta``/``act`` in grant mode)."""
    if profile == "hs-grant":
        return mint(SECRET.encode(), user, ttl=300, grant=Grant(delta, act))
    if profile == "rs-grant":
        return RSA.sign(grant_claims(user, delta, act), headers=GRANT_HEADER)
    if profile in ("rs-user", "jwks-user"):
        return RSA.sign(claims(user))
    if profile == "mixed":
        return token(user, aud=AUDIENCE)
    return token(user)


def body(auth_token: str, user: str = "alice", delta: int = 5, **extra: Any) -> Request:
    return Request({"user_id": user, "score_delta": delta, "auth_token": auth_token, **extra})


def raw(delta_text: str, auth_token: str, tail: str = "") -> Request:
    text = (
        f'{{"user_id": "alice", "score_delta": {delta_text}, "auth_token": "{auth_token}"{tail}}}'
    )
    return Request(text.encode())


def grant_hs(sub: str = "alice", delta: Any = 5, act: Any = "g-1", **extra: Any) -> str:
    return hmac_signed(
        {"alg": "HS256", "typ": GRANT_TYPE},
        grant_claims(sub, delta, act, **extra),
        SECRET.encode(),
    )


def grant_rs(sub: str = "alice", delta: Any = 5, act: Any = "g-1", **extra: Any) -> str:
    return RSA.sign(grant_claims(sub, delta, act, **extra), headers=GRANT_HEADER)


def _rs(**overrides: Any) -> str:
    """A genuine RS256 login token for alice with some claims replaced (None: removed)."""
    payload = {k: v for k, v in {**claims(), **overrides}.items() if v is not None}
    return RSA.sign(payload)


def _rs_signed(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """RS256 over any header (PyJWT refuses to write some of the lying ones)."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = RSA.private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def _deep_payload_signed() -> str:
    """A payload no JSON parser should recurse into, under a valid HS256 signature."""
    payload = b"{" + b'"a":{' * 1500 + b"}" * 1501  # 9 KB: the token fits in the body limit
    signing_input = f"{segment(HS)}.{b64(payload)}"
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _tampered_rs() -> str:
    header, _, signature = RSA.sign(claims("bob")).split(".")
    return f"{header}.{b64(json.dumps(claims('alice')).encode())}.{signature}"


def _oversized(auth_token: str) -> Request:
    return body(auth_token, action_id="x" * (17 * 1024))


def _deep(auth_token: str) -> Request:
    nested = "[" * 3000 + "]" * 3000
    return Request(
        f'{{"user_id": "alice", "score_delta": 5, "auth_token": "{auth_token}", '
        f'"action_id": {nested}}}'.encode()
    )


Build = Callable[[Ctx], Request]


def case(profile: str, status: int, build: Build, id: str) -> Any:
    return pytest.param(profile, status, build, id=f"{profile}:{id}")


CATALOG: list[Any] = [
    # -- forged algorithms against a public-key verifier ------------------------------------------
    *(
        case("rs-user", 401, lambda c, alg=alg: body(unsigned(alg, claims())), f"alg-{alg}")
        for alg in ("none", "None", "NONE", "nOnE")
    ),
    case(
        "rs-user",
        401,
        lambda c: body(_rs_signed({"alg": "none", "kid": RSA.kid}, claims())),
        "alg-none-header-real-rs-signature",
    ),
    case("rs-user", 401, lambda c: body(hmac_signed(HS, claims(), PEM)), "hs256-keyed-with-pem"),
    case(
        "rs-user",
        401,
        lambda c: body(hmac_signed(HS, claims(), PEM.strip())),
        "hs256-keyed-with-pem-stripped",
    ),
    case(
        "rs-user",
        401,
        lambda c: body(hmac_signed({"alg": "RS256"}, claims(), PEM)),
        "rs256-header-hmac-with-pem",
    ),
    case(
        "mixed",
        401,
        lambda c: body(hmac_signed(HS, claims(), PEM)),
        "hs256-keyed-with-pem-when-hs256-allowed",
    ),
    case("mixed", 401, lambda c: body(unsigned("none", claims())), "alg-none"),
    case(
        "mixed",
        401,
        lambda c: body(RSA.sign(claims(aud="another-application"))),
        "rs256-for-another-application",
    ),
    case("mixed", 401, lambda c: body(token("alice")), "hs256-without-aud"),
    case(
        "jwks-user",
        401,
        lambda c: body(RSA.sign(claims(aud="another-application"))),
        "jwks-token-for-another-application",
    ),
    case("rs-user", 401, lambda c: body(ATTACKER.sign(claims())), "another-rsa-key"),
    case("rs-user", 401, lambda c: body(EC.sign(claims())), "es256-not-allowed"),
    case("rs-user", 401, lambda c: body(RSA.sign(claims(), algorithm="RS384")), "rs384-right-key"),
    case("rs-user", 401, lambda c: body(RSA.sign(claims(), algorithm="PS256")), "ps256-right-key"),
    case("rs-user", 401, lambda c: body(_tampered_rs()), "tampered-payload"),
    # -- headers that name a key, and crit -------------------------------------------------------
    case(
        "jwks-user",
        401,
        lambda c: body(ATTACKER.sign(claims(), headers={"jku": c.key_server.url(ATTACKER_JWKS)})),
        "jku-to-attacker-keys",
    ),
    case(
        "rs-user",
        401,
        lambda c: body(RSA.sign(claims(), headers={"jku": c.key_server.url()})),
        "jku-genuine-signature",
    ),
    case(
        "rs-user",
        401,
        lambda c: body(ATTACKER.sign(claims(), headers={"jwk": ATTACKER.jwk()})),
        "jwk-embedded-attacker-key",
    ),
    case(
        "rs-user",
        401,
        lambda c: body(RSA.sign(claims(), headers={"x5u": c.key_server.url("/cert.pem")})),
        "x5u",
    ),
    case("rs-user", 401, lambda c: body(RSA.sign(claims(), headers={"x5c": ["MIIB"]})), "x5c"),
    case(
        "rs-user",
        401,
        lambda c: body(RSA.sign(claims(), headers={"crit": ["urn:x:y"], "urn:x:y": 1})),
        "crit-unknown",
    ),
    case(
        "hs-user",
        401,
        lambda c: body(
            hmac_signed({"alg": "HS256", "crit": ["b64"], "b64": True}, claims(), SECRET.encode())
        ),
        "crit-b64",
    ),
    case(
        "hs-user",
        401,
        lambda c: body(f"{b64(b'[' * 4000 + b']' * 4000)}.{segment(claims())}.sig"),
        "token-header-deeply-nested",
    ),
    case(
        "hs-user",
        401,
        lambda c: body(_deep_payload_signed()),
        "token-payload-deeply-nested-validly-signed",
    ),
    # -- kid and the JWKS ------------------------------------------------------------------------
    case("jwks-user", 401, lambda c: body(RSA.sign(claims(), kid="no-such-kid")), "kid-unknown"),
    case("jwks-user", 401, lambda c: body(RSA.sign(claims(), kid=EC.kid)), "kid-of-an-ec-key"),
    case(
        "jwks-user",
        401,
        lambda c: body(_rs_signed({"alg": "RS256", "kid": 17}, claims())),
        "kid-not-a-string",
    ),
    case("jwks-user", 401, lambda c: body(RSA.sign(claims(), kid=None)), "kid-missing-ambiguous"),
    case("jwks-user", 401, lambda c: body(ATTACKER.sign(claims(), kid=RSA.kid)), "kid-wrong-key"),
    case(
        "jwks-user",
        401,
        lambda c: body(ed_key("intruder").sign(claims(), kid=ED.kid)),
        "eddsa-wrong-key",
    ),
    case(
        "jwks-user",
        401,
        lambda c: body(hmac_signed({"alg": "HS256", "kid": "oct-1"}, claims(), b"published")),
        "hs256-with-the-sets-oct-key",
    ),
    case(
        "jwks-user",
        401,
        lambda c: body(hmac_signed({"alg": "RS256", "kid": RSA.kid}, claims(), PEM)),
        "rs256-header-hmac-with-pem",
    ),
    # -- iss, aud, time --------------------------------------------------------------------------
    case("rs-user", 401, lambda c: body(_rs(aud="other")), "aud-wrong"),
    case("rs-user", 401, lambda c: body(_rs(aud=AUDIENCE[:-1])), "aud-prefix"),
    case("rs-user", 401, lambda c: body(_rs(aud=["other", AUDIENCE + "2"])), "aud-list-without"),
    case("rs-user", 401, lambda c: body(_rs(aud=None)), "aud-missing"),
    case("rs-user", 401, lambda c: body(_rs(iss="https://evil.example")), "iss-wrong"),
    case("rs-user", 401, lambda c: body(_rs(iss=ISSUER + ".evil.example")), "iss-ours-as-prefix"),
    case("rs-user", 401, lambda c: body(_rs(iss=ISSUER[:-3])), "iss-prefix-of-ours"),
    case("rs-user", 401, lambda c: body(_rs(iss=ISSUER + "/")), "iss-trailing-slash"),
    case("rs-user", 401, lambda c: body(_rs(iss=None)), "iss-missing"),
    case("jwks-user", 401, lambda c: body(RSA.sign(claims(iss="x"))), "iss-wrong"),
    case("rs-user", 401, lambda c: body(_rs(exp=int(time.time()) - 1)), "expired"),
    case("rs-user", 401, lambda c: body(_rs(nbf=int(time.time()) + 600)), "nbf-future"),
    case("rs-user", 401, lambda c: body(_rs(iat=int(time.time()) + 600)), "iat-future"),
    case("rs-user", 401, lambda c: body(_rs(exp=int(time.time()) + 2 * 86_400)), "exp-2-days"),
    case("hs-user", 401, lambda c: body(token("alice", ttl=86_400 + 120)), "exp-past-max-ttl"),
    case("hs-user", 401, lambda c: body(token("alice", iat=int(time.time()) + 600)), "iat-future"),
    case("rs-user", 401, lambda c: body(_rs(exp=None)), "exp-missing"),
    case("rs-user", 401, lambda c: body(RSA.sign(claims("bob"))), "another-users-token"),
    # -- grants and login tokens in the wrong place ----------------------------------------------
    case("hs-user", 401, lambda c: body(grant_hs()), "grant-as-login-token"),
    case(
        "hs-user",
        401,
        lambda c: Request(
            {"user_id": "alice", "score_delta": 5},
            {"authorization": f"Bearer {grant_hs()}"},
        ),
        "grant-as-login-token-bearer",
    ),
    case("rs-user", 401, lambda c: body(grant_rs()), "grant-as-login-token"),
    case("hs-grant", 401, lambda c: body(token("alice")), "login-token-as-grant"),
    case("rs-grant", 401, lambda c: body(RSA.sign(claims())), "login-token-as-grant"),
    case(
        "hs-grant",
        401,
        lambda c: body(token("alice", typ=GRANT_TYPE, delta=5, act="g-1")),
        "grant-typ-as-a-claim-only",
    ),
    case(
        "hs-grant",
        401,
        lambda c: body(token("alice", delta=5, act="g-1")),
        "grant-claims-without-typ",
    ),
    case("hs-grant", 401, lambda c: body(grant_hs(delta=6)), "grant-delta-mismatch"),
    case("hs-grant", 401, lambda c: body(grant_hs(delta=-5)), "grant-delta-sign-mismatch"),
    case("hs-grant", 401, lambda c: body(grant_hs(sub="bob")), "grant-another-user"),
    case("hs-grant", 401, lambda c: body(grant_hs(), user="bob"), "body-another-user"),
    case("hs-grant", 401, lambda c: body(grant_hs(), action_id="g-2"), "grant-action-mismatch"),
    case("hs-grant", 401, lambda c: body(grant_hs(act=None)), "grant-act-missing"),
    case("hs-grant", 401, lambda c: body(grant_hs(act=7)), "grant-act-number"),
    case("hs-grant", 401, lambda c: body(grant_hs(delta="5")), "grant-delta-string"),
    case("hs-grant", 401, lambda c: body(grant_hs(delta=5.0)), "grant-delta-float"),
    case("hs-grant", 401, lambda c: body(grant_hs(delta=True), delta=1), "grant-delta-true"),
    case("hs-grant", 401, lambda c: body(grant_hs(ttl=-5)), "grant-expired"),
    case("hs-grant", 401, lambda c: body(grant_hs(ttl=2 * 86_400)), "grant-exp-too-far"),
    case(
        "hs-grant",
        401,
        lambda c: body(
            hmac_signed(
                {"alg": "HS256", "typ": GRANT_TYPE},
                grant_claims("alice", 5, "g-1"),
                b"another-secret-that-is-long-enough-0123456789",
            )
        ),
        "grant-wrong-secret",
    ),
    case(
        "hs-grant",
        401,
        lambda c: body(unsigned("none", grant_claims("alice", 5, "g-1"), typ=GRANT_TYPE)),
        "grant-alg-none",
    ),
    case("rs-grant", 401, lambda c: body(grant_rs(delta=50)), "grant-delta-mismatch"),
    case("rs-grant", 401, lambda c: body(grant_rs(iss="x")), "grant-iss-wrong"),
    case(
        "rs-grant",
        401,
        lambda c: body(
            hmac_signed({"alg": "HS256", "typ": GRANT_TYPE}, grant_claims("alice", 5, "g-1"), PEM)
        ),
        "grant-hs256-keyed-with-pem",
    ),
    case(
        "hs-grant",
        409,
        lambda c: body(grant_hs(delta=6, act="seed-a"), delta=6),
        "grant-for-a-used-act-other-delta",
    ),
    case(
        "hs-grant",
        400,
        lambda c: body(grant_hs(delta=5000), delta=5000),
        "grant-delta-out-of-range",
    ),
    # -- bad bodies carrying a valid grant (or valid RS256 token) --------------------------------
    case("hs-grant", 400, lambda c: raw('"5"', grant_hs()), "delta-string"),
    case("hs-grant", 400, lambda c: raw("5.5", grant_hs()), "delta-5.5"),
    case("hs-grant", 400, lambda c: raw("5e-1", grant_hs()), "delta-5e-1"),
    case("hs-grant", 400, lambda c: raw("true", grant_hs()), "delta-true"),
    case("hs-grant", 400, lambda c: raw("NaN", grant_hs()), "delta-NaN"),
    case("hs-grant", 400, lambda c: raw("Infinity", grant_hs()), "delta-Infinity"),
    case("hs-grant", 400, lambda c: raw("-Infinity", grant_hs()), "delta--Infinity"),
    case("hs-grant", 400, lambda c: raw("9" * 5000, grant_hs()), "delta-5000-digits"),
    case(
        "hs-grant",
        400,
        lambda c: raw("5", grant_hs(), ', "score_delta": 5'),
        "duplicate-delta-same-value",
    ),
    case(
        "hs-grant",
        400,
        lambda c: raw("5", grant_hs(), ', "user_id": "alice"'),
        "duplicate-user_id",
    ),
    case("hs-grant", 400, lambda c: body(grant_hs(), delta_=5), "extra-field"),
    case("hs-grant", 400, lambda c: body(grant_hs(), act="g-1"), "extra-field-act"),
    case("hs-grant", 400, lambda c: _deep(grant_hs()), "deep-nesting"),
    case("hs-grant", 413, lambda c: _oversized(grant_hs()), "oversized-body"),
    case("rs-grant", 400, lambda c: raw("NaN", grant_rs()), "delta-NaN"),
    case("rs-user", 400, lambda c: raw("9" * 5000, RSA.sign(claims())), "delta-5000-digits"),
    case("rs-user", 400, lambda c: body(RSA.sign(claims()), is_admin=True), "extra-field"),
    case("rs-user", 413, lambda c: _oversized(RSA.sign(claims())), "oversized-body"),
    case("jwks-user", 400, lambda c: raw("1E400", RSA.sign(claims())), "delta-1E400"),
]


@pytest.fixture(scope="module")
def key_server() -> Iterator[KeyServer]:
    yield from serve_keys()


@pytest.fixture(autouse=True)
def _published_keys(key_server: KeyServer) -> None:
    oct_key = {"kty": "oct", "k": b64(b"published"), "kid": "oct-1", "alg": "HS256"}
    # Two RSA keys: a token without a kid is ambiguous and must not pick one.
    key_server.documents["/jwks.json"] = jwks(RSA, rsa_key("rsa-2"), EC, ED, extra=[oct_key])
    key_server.documents[ATTACKER_JWKS] = jwks(ATTACKER)


def test_the_catalog_is_large_and_distinct() -> None:
    ids = [param.id for param in CATALOG]
    assert len(set(ids)) == len(ids) >= 60
    assert {param.values[0] for param in CATALOG} == {
        "hs-user",
        "hs-grant",
        "rs-user",
        "mixed",
        "jwks-user",
        "rs-grant",
    }


@pytest.mark.parametrize(("profile", "status", "build"), CATALOG)
async def test_refused_and_nothing_changed(
    make_api: ApiFactory,
    tmp_path: Path,
    key_server: KeyServer,
    profile: str,
    status: int,
    build: Build,
) -> None:
    async with make_api(**_profile_settings(profile, tmp_path, key_server)) as api:
        for user, delta, act in (("alice", 10, "seed-a"), ("bob", 30, "seed-b")):
            seed = body(valid_token(profile, user, delta, act), user, delta, action_id=act)
            response = await api.client.post(UPDATE, json=seed.body)
            assert response.status_code == 200, response.text
        before = await api.state()
        request = build(Ctx(profile, key_server))
        if isinstance(request.body, bytes):
            response = await api.client.post(
                UPDATE,
                content=request.body,
                headers={"content-type": "application/json", **(request.headers or {})},
            )
        else:
            response = await api.client.post(UPDATE, json=request.body, headers=request.headers)
        assert_error(response, status)
        assert await api.state() == before
        assert key_server.count(ATTACKER_JWKS) == 0


@pytest.mark.parametrize(
    "profile", ["hs-user", "hs-grant", "rs-user", "mixed", "jwks-user", "rs-grant"]
)
async def test_each_profile_accepts_its_own_valid_request(
    make_api: ApiFactory, tmp_path: Path, key_server: KeyServer, profile: str
) -> None:
    """The control: each profile's valid request is a 200 that changes the state, so the
    refusals above are refusals of the one thing each case spoils."""
    async with make_api(**_profile_settings(profile, tmp_path, key_server)) as api:
        before = await api.state()
        response = await api.client.post(UPDATE, json=body(valid_token(profile, "alice")).body)
        assert response.status_code == 200, response.text
        after = await api.state()
        assert after.score_rows == before.score_rows + 1
        assert after.seq == before.seq + 1
