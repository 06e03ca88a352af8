"""Every way an update can be refused (400 for the body, 401 for the token), and proof that a
refused update changes nothing: the top-10 body, every user's total and the number of score
events are the same afterwards.

Each bad body comes with a valid token for its user (in the body, and a valid Bearer for alice),
so the body alone is what is wrong. Each forged token comes with a valid body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.api.conftest import UPDATE, Api, assert_error
from tests.support.server import SECRET
from tests.support.tokens import token

OTHER_SECRET = "another-secret-that-is-long-enough-0123456789"
_TOKEN = b"<TOKEN>"


async def assert_refused(
    api: Api,
    status: int,
    *,
    content: bytes,
    headers: dict[str, str] | None = None,
    secret_text: str | None = None,
) -> dict[str, str]:
    before = await api.state()
    response = await api.client.post(
        UPDATE, content=content, headers={"content-type": "application/json", **(headers or {})}
    )
    body = assert_error(response, status)
    assert await api.state() == before
    if secret_text and len(secret_text) > 8:
        assert secret_text not in response.text
    return body


# -- bad bodies (400) ---------------------------------------------------------------------------


BAD_BODIES: list[Any] = [
    # not JSON at all, or not one JSON value
    pytest.param(b"", id="empty"),
    pytest.param(b"   \n", id="whitespace-only"),
    pytest.param(b"user_id=alice&score_delta=5", id="form-encoded"),
    pytest.param(b'{"user_id": "alice", "score_delta": 5', id="truncated"),
    pytest.param(b'{"user_id": "alice", "score_delta": 5} x', id="trailing-garbage"),
    pytest.param(
        b'{"user_id":"alice","score_delta":5}{"user_id":"alice","score_delta":5}', id="two-objects"
    ),
    pytest.param(b"{'user_id': 'alice', 'score_delta': 5}", id="single-quotes"),
    pytest.param(b'{"user_id": "alice", /* c */ "score_delta": 5}', id="comment"),
    pytest.param(b'{"user_id": "alice", "score_delta": 5,}', id="trailing-comma"),
    pytest.param(b'{"user_id": "al\xffice", "score_delta": 5}', id="invalid-utf8"),
    pytest.param(b'{"user_id": "\xc0\xafalice", "score_delta": 5}', id="overlong-utf8"),
    # JSON, but not an object
    pytest.param(b"null", id="null"),
    pytest.param(b"5", id="number"),
    pytest.param(b'"alice"', id="string"),
    pytest.param(b"true", id="boolean"),
    pytest.param(b"[]", id="empty-array"),
    pytest.param(
        b'[{"user_id": "alice", "score_delta": 5, "auth_token": "<TOKEN>"}]',
        id="array-of-valid-body",
    ),
    # missing fields
    pytest.param({}, id="empty-object"),
    pytest.param({"score_delta": 5}, id="missing-user_id"),
    pytest.param({"user_id": "alice"}, id="missing-score_delta"),
    # score_delta that is not a JSON integer
    pytest.param({"user_id": "alice", "score_delta": "5"}, id="delta-string"),
    # (5.0, 5e0 and 1E2 are integers, as JSON Schema says: tests/api/test_update.py)
    pytest.param(
        b'{"user_id": "alice", "score_delta": 5.0000000000000001, "auth_token": "<TOKEN>"}',
        id="delta-5.0000000000000001",
    ),
    pytest.param(
        b'{"user_id": "alice", "score_delta": 5e-1, "auth_token": "<TOKEN>"}', id="delta-5e-1"
    ),
    pytest.param(
        b'{"user_id": "alice", "score_delta": 1e999999999, "auth_token": "<TOKEN>"}',
        id="delta-1e999999999",
    ),
    pytest.param({"user_id": "alice", "score_delta": 5.5}, id="delta-5.5"),
    pytest.param({"user_id": "alice", "score_delta": True}, id="delta-true"),
    pytest.param({"user_id": "alice", "score_delta": False}, id="delta-false"),
    pytest.param({"user_id": "alice", "score_delta": None}, id="delta-null"),
    pytest.param({"user_id": "alice", "score_delta": [5]}, id="delta-array"),
    pytest.param({"user_id": "alice", "score_delta": {"value": 5}}, id="delta-object"),
    pytest.param(
        b'{"user_id": "alice", "score_delta": NaN, "auth_token": "<TOKEN>"}', id="delta-NaN"
    ),
    pytest.param(
        b'{"user_id": "alice", "score_delta": Infinity, "auth_token": "<TOKEN>"}',
        id="delta-Infinity",
    ),
    pytest.param(
        b'{"user_id": "alice", "score_delta": -Infinity, "auth_token": "<TOKEN>"}',
        id="delta--Infinity",
    ),
    pytest.param(
        b'{"user_id": "alice", "score_delta": 0x10, "auth_token": "<TOKEN>"}', id="delta-hex"
    ),
    pytest.param(
        b'{"user_id": "alice", "score_delta": +5, "auth_token": "<TOKEN>"}', id="delta-plus-sign"
    ),
    pytest.param(
        b'{"user_id": "alice", "score_delta": 05, "auth_token": "<TOKEN>"}', id="delta-leading-zero"
    ),
    # score_delta an integer, but out of range (defaults: 1..1000)
    pytest.param({"user_id": "alice", "score_delta": 0}, id="delta-zero"),
    pytest.param(
        b'{"user_id": "alice", "score_delta": -0, "auth_token": "<TOKEN>"}', id="delta-minus-zero"
    ),
    pytest.param({"user_id": "alice", "score_delta": -1}, id="delta-below-min"),
    pytest.param({"user_id": "alice", "score_delta": 1001}, id="delta-above-max"),
    pytest.param({"user_id": "alice", "score_delta": 10**30}, id="delta-10e30"),
    pytest.param({"user_id": "alice", "score_delta": -(10**30)}, id="delta-minus-10e30"),
    pytest.param({"user_id": "alice", "score_delta": 2**63}, id="delta-2e63"),
    pytest.param(
        b'{"user_id": "alice", "score_delta": ' + b"9" * 5000 + b', "auth_token": "<TOKEN>"}',
        id="delta-5000-digits",
    ),
    # duplicate and unknown keys
    pytest.param(
        b'{"user_id": "alice", "score_delta": 5, "score_delta": 5, "auth_token": "<TOKEN>"}',
        id="duplicate-delta",
    ),
    pytest.param(
        b'{"user_id": "mallory", "user_id": "alice", "score_delta": 5, "auth_token": "<TOKEN>"}',
        id="duplicate-user_id",
    ),
    pytest.param({"user_id": "alice", "score_delta": 5, "score": 1000}, id="unknown-score"),
    pytest.param({"user_id": "alice", "score_delta": 5, "is_admin": True}, id="unknown-is_admin"),
    pytest.param(
        {"User_Id": "alice", "user_id": "alice", "score_delta": 5}, id="unknown-case-variant"
    ),
    # user_id
    pytest.param({"user_id": "", "score_delta": 5}, id="user_id-empty"),
    pytest.param({"user_id": "a" * 65, "score_delta": 5}, id="user_id-65-chars"),
    pytest.param({"user_id": "alice bob", "score_delta": 5}, id="user_id-space"),
    pytest.param({"user_id": "alice/../bob", "score_delta": 5}, id="user_id-slash"),
    pytest.param({"user_id": "ålice", "score_delta": 5}, id="user_id-non-ascii"),
    pytest.param({"user_id": "alice\n", "score_delta": 5}, id="user_id-trailing-newline"),
    pytest.param({"user_id": "\u0000alice", "score_delta": 5}, id="user_id-nul"),
    pytest.param({"user_id": "\ud800", "score_delta": 5}, id="user_id-lone-surrogate"),
    pytest.param({"user_id": "alice'--", "score_delta": 5}, id="user_id-quote"),
    pytest.param({"user_id": 123, "score_delta": 5}, id="user_id-number"),
    pytest.param({"user_id": None, "score_delta": 5}, id="user_id-null"),
    pytest.param({"user_id": ["alice"], "score_delta": 5}, id="user_id-array"),
    # action_id
    pytest.param({"user_id": "alice", "score_delta": 5, "action_id": ""}, id="action_id-empty"),
    pytest.param(
        {"user_id": "alice", "score_delta": 5, "action_id": "a" * 129}, id="action_id-129-chars"
    ),
    pytest.param(
        {"user_id": "alice", "score_delta": 5, "action_id": "a\u0007b"}, id="action_id-bell"
    ),
    pytest.param(
        {"user_id": "alice", "score_delta": 5, "action_id": "a\nb"}, id="action_id-newline"
    ),
    pytest.param({"user_id": "alice", "score_delta": 5, "action_id": "\t"}, id="action_id-tab"),
    pytest.param(
        {"user_id": "alice", "score_delta": 5, "action_id": "a\u202eb"},
        id="action_id-bidi-override",
    ),
    pytest.param({"user_id": "alice", "score_delta": 5, "action_id": 5}, id="action_id-number"),
    pytest.param({"user_id": "alice", "score_delta": 5, "action_id": ["x"]}, id="action_id-array"),
    # auth_token of the wrong type (a valid Bearer header is present)
    pytest.param({"user_id": "alice", "score_delta": 5, "auth_token": 5}, id="auth_token-number"),
    pytest.param({"user_id": "alice", "score_delta": 5, "auth_token": True}, id="auth_token-true"),
    pytest.param(
        {"user_id": "alice", "score_delta": 5, "auth_token": ["<TOKEN>"]}, id="auth_token-array"
    ),
    pytest.param(
        {"user_id": "alice", "score_delta": 5, "auth_token": {"token": "<TOKEN>"}},
        id="auth_token-object",
    ),
    # nesting deep enough to exhaust a recursive parser, within the size limit
    pytest.param(
        b'{"user_id": "alice", "score_delta": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        id="deep-nesting",
    ),
    pytest.param(
        b'{"user_id": "alice", "score_delta": 5, "action_id": '
        + b'{"a":' * 2500
        + b"1"
        + b"}" * 2500
        + b"}",
        id="deep-nesting-objects",
    ),
]


def _encode_case(case: bytes | dict[str, Any], alice: str) -> bytes:
    if isinstance(case, bytes):
        return case.replace(_TOKEN, alice.encode())
    body = dict(case)
    if "auth_token" not in body:
        user_id = body.get("user_id")
        subject = user_id if isinstance(user_id, str) else "alice"
        body["auth_token"] = token(subject)
    text = json.dumps(body).replace(_TOKEN.decode(), alice)
    return text.encode()


def test_the_catalog_is_large_and_distinct() -> None:
    ids = [case.id for case in BAD_BODIES]
    values = [repr(case.values) for case in BAD_BODIES]
    assert len(set(ids)) == len(ids) >= 30
    assert len(set(values)) == len(values)


async def test_the_state_snapshot_sees_an_accepted_update(seeded: Api) -> None:
    """The comparison the refusals rely on is not blind: a 200 changes it."""
    before = await seeded.state()
    await seeded.ok("alice", 1)
    after = await seeded.state()
    assert after != before
    assert after.score_rows == before.score_rows + 1
    assert after.seq == before.seq + 1


@pytest.mark.parametrize("case", BAD_BODIES)
async def test_bad_body_is_400_and_changes_nothing(
    seeded: Api, case: bytes | dict[str, Any]
) -> None:
    alice = token("alice")
    await assert_refused(
        seeded,
        400,
        content=_encode_case(case, alice),
        headers={"authorization": f"Bearer {alice}"},
    )


async def test_a_valid_body_with_the_same_token_is_accepted(seeded: Api) -> None:
    """The catalog's control: the same request, well formed, is a 200."""
    alice = token("alice")
    response = await seeded.client.post(
        UPDATE,
        content=json.dumps({"user_id": "alice", "score_delta": 5}).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {alice}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["new_score"] == 15


async def test_a_bad_body_is_refused_before_the_token_is_looked_at(seeded: Api) -> None:
    """A bad body with a bad token is a 400: the body is parsed and validated first."""
    body = {"user_id": "alice", "score_delta": "5", "auth_token": "forged"}
    await assert_refused(seeded, 400, content=json.dumps(body).encode())


# -- forged and unacceptable tokens (401) -------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: Any) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def _claims(sub: Any = "alice", **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + 3600, **extra}


def _signed(
    header: dict[str, Any],
    claims: dict[str, Any],
    *,
    key: str = SECRET,
    digest: Callable[..., Any] = hashlib.sha256,
) -> str:
    """A token signed by hand, so that any header (even a lying one) can be produced."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    signature = hmac.new(key.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{_b64(signature)}"


def _unsigned(alg: str) -> str:
    return f"{_segment({'alg': alg, 'typ': 'JWT'})}.{_segment(_claims())}."


def _parts(value: str) -> list[str]:
    return value.split(".")


def _none_with_real_signature() -> str:
    _, payload, signature = _parts(token("alice"))
    return f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{payload}.{signature}"


def _tampered_sub() -> str:
    """bob's genuine token with its payload rewritten to say alice; bob's signature kept."""
    header, _, signature = _parts(token("bob"))
    return f"{header}.{_segment(_claims('alice'))}.{signature}"


def _tampered_exp() -> str:
    """alice's expired token with ``exp`` moved into the future; the signature kept."""
    header, _, signature = _parts(token("alice", ttl=-60))
    return f"{header}.{_segment(_claims('alice', exp=int(time.time()) + 86400))}.{signature}"


def _tampered_signature() -> str:
    header, payload, signature = _parts(token("alice"))
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def _signature_of_another_token() -> str:
    """alice's payload with the signature of another genuine token of alice's."""
    header, payload, _ = _parts(token("alice"))
    return f"{header}.{payload}.{_parts(token('alice', name='Alice'))[2]}"


def _stripped_signature() -> str:
    header, payload, _ = _parts(token("alice"))
    return f"{header}.{payload}."


def _embedded_jwk() -> str:
    """A header carrying the attacker's own key, signed with it."""
    jwk = {"kty": "oct", "k": _b64(OTHER_SECRET.encode())}
    return _signed({"alg": "HS256", "typ": "JWT", "jwk": jwk}, _claims(), key=OTHER_SECRET)


FORGED: list[Any] = [
    pytest.param(lambda: _unsigned("none"), id="alg-none"),
    pytest.param(lambda: _unsigned("None"), id="alg-None"),
    pytest.param(lambda: _unsigned("NONE"), id="alg-NONE"),
    pytest.param(lambda: _unsigned("nOnE"), id="alg-nOnE"),
    pytest.param(_none_with_real_signature, id="alg-none-with-a-real-signature"),
    pytest.param(lambda: _signed({"typ": "JWT"}, _claims()), id="alg-missing-hmac-ok"),
    pytest.param(lambda: _signed({"alg": "", "typ": "JWT"}, _claims()), id="alg-empty"),
    pytest.param(
        lambda: _signed({"alg": "HS384"}, _claims(), digest=hashlib.sha384),
        id="alg-HS384-right-key",
    ),
    pytest.param(
        lambda: _signed({"alg": "HS512"}, _claims(), digest=hashlib.sha512),
        id="alg-HS512-right-key",
    ),
    pytest.param(lambda: _signed({"alg": "RS256"}, _claims()), id="alg-RS256-hmac-signed"),
    pytest.param(lambda: _signed({"alg": "hs256"}, _claims()), id="alg-lowercase-hs256"),
    pytest.param(lambda: token("alice", secret=OTHER_SECRET), id="wrong-key"),
    pytest.param(_embedded_jwk, id="embedded-jwk-header"),
    pytest.param(lambda: token("alice", ttl=-60), id="expired"),
    pytest.param(lambda: token("alice", ttl=-1), id="expired-a-second-ago"),
    pytest.param(lambda: token("alice", nbf=int(time.time()) + 600), id="nbf-in-future"),
    pytest.param(lambda: _signed({"alg": "HS256"}, {"sub": "alice"}), id="missing-exp"),
    pytest.param(
        lambda: _signed({"alg": "HS256"}, {"exp": int(time.time()) + 3600}), id="missing-sub"
    ),
    pytest.param(lambda: _signed({"alg": "HS256"}, _claims(exp="soon")), id="exp-not-a-number"),
    pytest.param(lambda: _signed({"alg": "HS256"}, _claims(exp=None)), id="exp-null"),
    pytest.param(lambda: _signed({"alg": "HS256"}, _claims(exp=float("inf"))), id="exp-Infinity"),
    pytest.param(lambda: _signed({"alg": "HS256"}, _claims(sub=["alice"])), id="sub-array"),
    pytest.param(lambda: _signed({"alg": "HS256"}, _claims(sub=None)), id="sub-null"),
    pytest.param(
        lambda: _signed({"alg": "HS256"}, _claims(name=["Alice"])), id="name-not-a-string"
    ),
    pytest.param(lambda: token("bob"), id="another-users-token"),
    pytest.param(lambda: token("Alice"), id="sub-different-case"),
    pytest.param(lambda: token("alice "), id="sub-trailing-space"),
    pytest.param(_tampered_sub, id="tampered-payload-sub"),
    pytest.param(_tampered_exp, id="tampered-payload-exp"),
    pytest.param(_tampered_signature, id="tampered-signature"),
    pytest.param(_signature_of_another_token, id="signature-of-another-token"),
    pytest.param(_stripped_signature, id="signature-stripped"),
    pytest.param(lambda: "", id="empty-string"),
    pytest.param(lambda: " ", id="space"),
    pytest.param(lambda: "garbage", id="one-segment"),
    pytest.param(lambda: "a.b", id="two-segments"),
    pytest.param(lambda: "a.b.c", id="three-junk-segments"),
    pytest.param(lambda: "a.b.c.d.e", id="five-segments"),
    pytest.param(lambda: "..", id="only-dots"),
    pytest.param(lambda: "!!!.@@@.###", id="not-base64"),
    pytest.param(lambda: f"{_b64(b'hello')}.{_b64(b'world')}.{_b64(b'sig')}", id="not-json"),
    pytest.param(lambda: f"{_segment([1, 2])}.{_segment(_claims())}.", id="header-not-object"),
    pytest.param(lambda: token("alice") + ".", id="extra-dot"),
    pytest.param(lambda: "Bearer " + token("alice"), id="scheme-inside-body"),
    pytest.param(lambda: "ä.ö.ü", id="non-ascii"),
    pytest.param(lambda: "a" * 15000, id="very-long"),
    pytest.param(lambda: "\ud800", id="lone-surrogate"),
]


@pytest.mark.parametrize("forge", FORGED)
async def test_forged_token_is_401_and_changes_nothing(
    seeded: Api, forge: Callable[[], str]
) -> None:
    forged = forge()
    body = {"user_id": "alice", "score_delta": 5, "auth_token": forged}
    await assert_refused(
        seeded, 401, content=json.dumps(body).encode(), secret_text=forged if forged else None
    )


async def test_forged_tokens_fail_the_same_way_when_the_verifier_has_a_cached_valid_one(
    seeded: Api,
) -> None:
    """The cache is keyed by the whole token: a tampered copy of a cached token is a miss."""
    assert (await seeded.update("alice", 1, action_id="warm")).status_code == 200
    genuine = token("alice")
    assert (
        await seeded.client.post(
            UPDATE, json={"user_id": "alice", "score_delta": 1, "auth_token": genuine}
        )
    ).status_code == 200
    header, _, signature = _parts(genuine)
    richer = f"{header}.{_segment(_claims('alice', exp=int(time.time()) + 10**6))}.{signature}"
    await assert_refused(
        seeded,
        401,
        content=json.dumps({"user_id": "alice", "score_delta": 1, "auth_token": richer}).encode(),
    )


def test_the_forged_catalog_is_distinct() -> None:
    ids = [case.id for case in FORGED]
    assert len(set(ids)) == len(ids)
    tokens = [case.values[0]() for case in FORGED]
    assert len(set(tokens)) == len(tokens)


# -- the Authorization header ------------------------------------------------------------------

HEADER_CASES: list[Any] = [
    pytest.param(lambda: {}, id="no-token-anywhere"),
    pytest.param(lambda: {"authorization": ""}, id="empty-header"),
    pytest.param(lambda: {"authorization": "Bearer"}, id="bearer-without-token"),
    pytest.param(lambda: {"authorization": "Bearer "}, id="bearer-empty-token"),
    pytest.param(lambda: {"authorization": "Bearer    "}, id="bearer-blank-token"),
    pytest.param(lambda: {"authorization": f"Basic {token('alice')}"}, id="basic-scheme"),
    pytest.param(lambda: {"authorization": f"Token {token('alice')}"}, id="token-scheme"),
    pytest.param(lambda: {"authorization": token("alice")}, id="no-scheme"),
    pytest.param(
        lambda: {"authorization": "Basic " + base64.b64encode(b"alice:pw").decode()},
        id="basic-credentials",
    ),
    pytest.param(lambda: {"authorization": f"Bearer {token('bob')}"}, id="bearer-another-user"),
    pytest.param(
        lambda: {"authorization": f"Bearer {token('alice', secret=OTHER_SECRET)}"},
        id="bearer-wrong-key",
    ),
    pytest.param(lambda: {"authorization": f"Bearer {_unsigned('none')}"}, id="bearer-alg-none"),
    pytest.param(
        lambda: {"authorization": f"Bearer {token('alice', ttl=-60)}"}, id="bearer-expired"
    ),
]


@pytest.mark.parametrize("headers", HEADER_CASES)
async def test_bad_authorization_header_is_401_and_changes_nothing(
    seeded: Api, headers: Callable[[], dict[str, str]]
) -> None:
    body = {"user_id": "alice", "score_delta": 5}
    await assert_refused(seeded, 401, content=json.dumps(body).encode(), headers=headers())


async def test_a_null_body_token_falls_back_to_no_token(seeded: Api) -> None:
    body = {"user_id": "alice", "score_delta": 5, "auth_token": None}
    await assert_refused(seeded, 401, content=json.dumps(body).encode())


async def test_the_body_token_wins_over_a_valid_bearer(seeded: Api) -> None:
    """When both are present the body's token is the one checked, even if the header's is
    good: a forged body token is a 401."""
    body = {"user_id": "alice", "score_delta": 5, "auth_token": token("bob")}
    await assert_refused(
        seeded,
        401,
        content=json.dumps(body).encode(),
        headers={"authorization": f"Bearer {token('alice')}"},
    )


async def test_rejections_log_reason_user_and_client_but_never_the_token(
    seeded: Api, caplog: pytest.LogCaptureFixture
) -> None:
    forged = token("alice", secret=OTHER_SECRET)
    caplog.set_level("INFO")
    response = await seeded.client.post(
        UPDATE, json={"user_id": "alice", "score_delta": 5, "auth_token": forged}
    )
    assert response.status_code == 401
    rejected = [r for r in caplog.records if r.getMessage() == "update rejected"]
    assert len(rejected) == 1
    record: Any = rejected[0]
    assert record.reason == response.json()["error"]
    assert record.user_id == "alice"
    assert record.client == "127.0.0.1"
    for r in caplog.records:
        assert forged not in r.getMessage()
        assert all(forged not in str(value) for value in r.__dict__.values())
    assert forged not in caplog.text


async def test_a_signed_token_with_a_string_exp_is_treated_the_same_on_every_use(
    seeded: Api,
) -> None:
    weird = _signed({"alg": "HS256"}, _claims(exp=str(int(time.time()) + 3600)))
    statuses = []
    for action in ("s1", "s2"):
        response = await seeded.client.post(
            UPDATE,
            json={"user_id": "alice", "score_delta": 1, "auth_token": weird, "action_id": action},
        )
        statuses.append(response.status_code)
    assert statuses == [401, 401]  # "exp" must be a number, on every use
