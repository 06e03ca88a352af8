"""The strict parser of the update body, alone: types, not ranges (those are the service's)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scoreboard.errors import InvalidRequest
from scoreboard.web.guards.body import UpdateBody, parse


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_the_minimal_body() -> None:
    assert parse(b'{"user_id": "alice", "score_delta": 5}') == UpdateBody("alice", 5, None, None)


def test_every_field() -> None:
    raw = _json({"user_id": "alice", "score_delta": -3, "auth_token": "t.o.k", "action_id": "a"})
    assert parse(raw) == UpdateBody("alice", -3, "t.o.k", "a")


def test_a_null_auth_token_is_no_token() -> None:
    assert parse(_json({"user_id": "a", "score_delta": 1, "auth_token": None})).auth_token is None


def test_a_null_action_id_is_no_action_id() -> None:
    """The schema says nullable, and a generated client sends null for a field it leaves unset."""
    assert parse(_json({"user_id": "a", "score_delta": 1, "action_id": None})).action_id is None


@pytest.mark.parametrize("delta", [0, -1, 10**30, 2**63])
def test_ranges_are_not_the_parsers_business(delta: int) -> None:
    assert parse(_json({"user_id": "alice", "score_delta": delta})).score_delta == delta


@pytest.mark.parametrize("user_id", ["", "a" * 65, "not valid!"])
def test_user_id_format_is_not_the_parsers_business(user_id: str) -> None:
    assert parse(_json({"user_id": user_id, "score_delta": 1})).user_id == user_id


@pytest.mark.parametrize(
    ("text", "value"),
    [("5.0", 5), ("5e0", 5), ("1E2", 100), ("-3.000", -3), ("2.5e1", 25), ("-0.0", 0)],
)
def test_a_number_with_no_fraction_is_the_integer_it_equals(text: str, value: int) -> None:
    """JSON Schema's integer: the OpenAPI document says ``"type": "integer"``, and a validator,
    a generated client or Python's ``json.dumps(5.0)`` takes 5.0 for one."""
    parsed = parse(b'{"user_id": "a", "score_delta": ' + text.encode() + b"}")
    assert type(parsed.score_delta) is int
    assert parsed.score_delta == value


def test_an_integer_stays_an_exact_int() -> None:
    parsed = parse(b'{"user_id": "a", "score_delta": 123456789012345678901234567890}')
    assert type(parsed.score_delta) is int
    assert parsed.score_delta == 123456789012345678901234567890


def test_utf8_strings_and_escapes_are_decoded() -> None:
    parsed = parse('{"user_id": "al\\u0069ce", "score_delta": 1, "action_id": "é✓"}'.encode())
    assert parsed.user_id == "alice"
    assert parsed.action_id == "é✓"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        pytest.param(b"", "invalid_json", id="empty"),
        pytest.param(b"{", "invalid_json", id="truncated"),
        pytest.param(b'{"user_id": "a", "score_delta": 1} {}', "invalid_json", id="trailing"),
        pytest.param(b'{"user_id": "\xff", "score_delta": 1}', "invalid_json", id="bad-utf8"),
        pytest.param(b'{"user_id": "a", "score_delta": NaN}', "invalid_json", id="NaN"),
        pytest.param(b'{"user_id": "a", "score_delta": Infinity}', "invalid_json", id="Infinity"),
        pytest.param(b'{"user_id": "a", "score_delta": -Infinity}', "invalid_json", id="-Inf"),
        pytest.param(
            b'{"user_id": "a", "score_delta": ' + b"1" * 5000 + b"}",
            "invalid_json",
            id="5000-digit-integer",
        ),
        pytest.param(
            b'{"user_id": "a", "score_delta": 1, "score_delta": 1}',
            "invalid_json",
            id="duplicate-key",
        ),
        pytest.param(
            b'{"user_id": "a", "score_delta": 1, "x": {"k": 1, "k": 2}}',
            "invalid_json",
            id="duplicate-key-nested",
        ),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, "invalid_json", id="deep-nesting"),
        pytest.param(b"[]", "invalid_body", id="array"),
        pytest.param(b"null", "invalid_body", id="null"),
        pytest.param(b'"x"', "invalid_body", id="string"),
        pytest.param(b"1", "invalid_body", id="number"),
        pytest.param(
            b'{"user_id": "a", "score_delta": 1, "extra": 1}', "unknown_field", id="unknown"
        ),
        pytest.param(b'{"score_delta": 1}', "missing_field", id="no-user_id"),
        pytest.param(b'{"user_id": "a"}', "missing_field", id="no-score_delta"),
        pytest.param(b'{"user_id": 1, "score_delta": 1}', "invalid_user_id", id="user_id-int"),
        pytest.param(b'{"user_id": null, "score_delta": 1}', "invalid_user_id", id="user_id-null"),
        pytest.param(b'{"user_id": "a", "score_delta": "5"}', "invalid_score_delta", id="str"),
        pytest.param(b'{"user_id": "a", "score_delta": 5.5}', "invalid_score_delta", id="5.5"),
        pytest.param(
            b'{"user_id": "a", "score_delta": 5.0000000000000001}',
            "invalid_score_delta",
            id="5.0000000000000001",  # 5.0 as a float, but not an integer
        ),
        pytest.param(b'{"user_id": "a", "score_delta": 5e-1}', "invalid_score_delta", id="5e-1"),
        pytest.param(
            b'{"user_id": "a", "score_delta": 1e999999999}',
            "invalid_score_delta",
            id="1e999999999",  # never expanded into an integer of a billion digits
        ),
        pytest.param(b'{"user_id": "a", "score_delta": true}', "invalid_score_delta", id="true"),
        pytest.param(b'{"user_id": "a", "score_delta": null}', "invalid_score_delta", id="null-d"),
        pytest.param(
            b'{"user_id": "a", "score_delta": 1, "auth_token": 5}',
            "invalid_auth_token",
            id="token-int",
        ),
        pytest.param(
            b'{"user_id": "a", "score_delta": 1, "auth_token": ["t"]}',
            "invalid_auth_token",
            id="token-list",
        ),
        pytest.param(
            b'{"user_id": "a", "score_delta": 1, "action_id": 7}',
            "invalid_action_id",
            id="action-int",
        ),
    ],
)
def test_refused_with_a_machine_code(raw: bytes, code: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse(raw)
    assert caught.value.code == code
    assert caught.value.message


def test_an_unknown_field_is_refused_even_next_to_missing_ones() -> None:
    """No mass assignment: an extra field is reported first, whatever else is wrong."""
    with pytest.raises(InvalidRequest) as caught:
        parse(b'{"score": 1000}')
    assert caught.value.code == "unknown_field"


def test_the_message_about_unknown_fields_stays_short() -> None:
    """Attacker-chosen field names are truncated and capped, so they cannot flood the log."""
    fields = {("k" * 500) + str(i): i for i in range(200)}
    with pytest.raises(InvalidRequest) as caught:
        parse(_json({"user_id": "a", "score_delta": 1, **fields}))
    assert len(caught.value.message) < 400
    assert "\n" not in caught.value.message


def test_the_message_never_quotes_a_token() -> None:
    secret = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.c2lnbmF0dXJl"
    for raw in (
        _json({"user_id": "a", "score_delta": "x", "auth_token": secret}),
        _json({"user_id": 1, "score_delta": 1, "auth_token": secret}),
        _json({"user_id": "a", "score_delta": 1, "auth_token": secret, "z": 1}),
    ):
        with pytest.raises(InvalidRequest) as caught:
            parse(raw)
        assert secret not in caught.value.message
