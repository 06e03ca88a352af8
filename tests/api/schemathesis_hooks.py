"""Schemathesis hooks for tests/api/test_schema.py (``hooks`` in schemathesis.toml beside it).

A schema-valid update still needs a valid token, which no generator can make: without one every
positive update is a 401, and ``positive_data_acceptance`` would prove nothing about the update.
So the run signs real tokens, with the test servers' secret (tests/support/tokens.py), for the
user each generated body names. The token goes in ``Authorization: Bearer``, and in place of a
generated ``auth_token`` when the document calls that one valid (the body's token wins over the
header): a valid value swapped for another valid value leaves the case as positive or negative as
it was generated. A generated token the document calls invalid is left alone: it is what makes
the case negative, and the server must refuse it. Reads are public and get no token.

Nothing here comes from the server's code: what counts as a valid ``auth_token`` is read from
the document under test, so the same hooks judge any version of the server.

``/api/admin`` takes an admin key: the one test_schema.py created in the server's database
before the run, given here in ``SCOREBOARD_TEST_ADMIN_KEY``. Without it every admin request
would be a 401 and the admin routes would go untested.

A webhook's routes name it by an id the server made (``wh_`` and random hex) and a delivery by
its number: a generated id names a real one only by chance, and every request would be a 404.
So a generated id the document calls valid is swapped, when the request is sent, for a real
one: the run's webhook (registered here through the API when there is none, pointing at a
closed port of 127.0.0.1, which the test server allows) and its newest delivery (queued by the
run's own updates entering the top 10). An invalid id is left alone, as tokens are. An event's
routes (void, restore) likewise get a real event id for a valid generated one: the newest event
of a user of the run's own (posted here through the API when it has none). Without it the
routes were answered 404 nearly always, and once the document gave their bodies examples the
generation no longer reached a real event by a link often enough ("missing test data").
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import jwt
import requests
import schemathesis

from tests.support.server import SECRET
from tests.support.tokens import token

UPDATE = "/api/scores/update"


@schemathesis.auth(refresh_interval=None).apply_to(method="POST", path=UPDATE)
class UserToken:
    """A token for the user the body names when it is sent, or none when it names no user.

    Signed in ``set``, from the body as it is then: in the stateful phase a link (for example
    from an admin read of a user) fills ``user_id`` after ``get`` ran."""

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return "per-case"

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        body = case.body
        if not isinstance(body, dict) or not isinstance(body.get("user_id"), str):
            return  # nothing to sign for: the request goes as generated
        signed = token(body["user_id"])
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {signed}"}
        generated = body.get("auth_token")
        if isinstance(generated, str) and _documented_token(case).is_valid(generated):
            body["auth_token"] = signed


WEBHOOK = "/api/admin/webhooks/{webhook_id}"
EVENT = "/api/admin/events/{event_id}"
EVENT_USER = "schemathesis-events"
"""The user whose events the event routes act on."""
_WEBHOOK_ID = re.compile(r"wh_[0-9a-f]{1,29}")


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
    """The token again, for the user the body names now: in the stateful phase a link (for
    example from an admin read of a user) may fill ``user_id`` after the auth above ran. And a
    real webhook (and delivery) for a valid generated one.

    Two rules the document states in words, since OpenAPI cannot relate two parameters: ``at``
    excludes ``period``, and a trajectory has at most 1,000 points. A case that breaks one
    drops the parameter that does (Schemathesis judges the case again as it is sent)."""
    if case.path.startswith(WEBHOOK):
        _real_webhook(case)
        return
    if case.path.startswith(EVENT):
        _real_event(case)
        return
    _documented_combinations(case)
    if case.path != UPDATE or not isinstance(case.body, dict):
        return
    user = case.body.get("user_id")
    header = (case.headers or {}).get("Authorization", "")
    if not isinstance(user, str) or not header.startswith("Bearer "):
        return
    if _subject(header[len("Bearer ") :]) in (None, user):
        return  # not one of ours, or already right
    signed = token(user)
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {signed}"}
    if _subject(case.body.get("auth_token")) not in (None, user):
        case.body["auth_token"] = signed


def _documented_combinations(case: schemathesis.Case) -> None:
    query = case.query
    if not isinstance(query, dict):
        return
    if "at" in query and "period" in query:
        del query["period"]
    if case.path.endswith("/trajectory") and "since" in query:
        bucket = 3600 if query.get("bucket", "hour") == "hour" else 86400
        now = datetime.now(UTC)
        try:
            since = datetime.fromisoformat(str(query["since"]))
            until = min(datetime.fromisoformat(str(query.get("until", now.isoformat()))), now)
        except (TypeError, ValueError):
            del query["since"]  # a time Python cannot hold: read as the earliest or the latest
            return
        if (until - since).total_seconds() / bucket > _POINTS_SAFE:
            del query["since"]


_POINTS_SAFE = 990
"""Below the document's 1,000 points, with room for days of 23 or 25 hours."""


def _subject(value: object) -> str | None:
    """The ``sub`` of a token this module signed (``None`` for anything else)."""
    if not isinstance(value, str):
        return None
    try:
        claims = jwt.decode(value, SECRET, algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    subject = claims.get("sub")
    return subject if isinstance(subject, str) else None


def _documented_token(case: schemathesis.Case) -> Any:
    """A validator of ``auth_token`` as the document under test describes it."""
    raw = case.operation.schema.raw_schema
    body = raw["paths"][UPDATE]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for(body["properties"]["auth_token"], validate_formats=True)


@schemathesis.auth(refresh_interval=None).apply_to(path_regex="^/api/admin/")
class AdminKey:
    """The run's admin key on every admin request."""

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return os.environ["SCOREBOARD_TEST_ADMIN_KEY"]

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


def _real_webhook(case: schemathesis.Case) -> None:
    params = case.path_parameters or {}
    generated = params.get("webhook_id")
    if not isinstance(generated, str) or _WEBHOOK_ID.fullmatch(generated) is None:
        return
    base = case.operation.schema.get_base_url().rstrip("/") + "/api/admin/webhooks"
    headers = {"Authorization": f"Bearer {os.environ['SCOREBOARD_TEST_ADMIN_KEY']}"}
    answer = requests.get(base, headers=headers, timeout=10)
    assert answer.status_code == 200, (base, answer.status_code, answer.text)
    listed = answer.json()["webhooks"]
    if listed:
        webhook_id = listed[0]["id"]
    else:
        body = {"url": "http://127.0.0.1:9/hook", "events": ["top.entered"], "boards": None}
        webhook_id = requests.post(base, json=body, headers=headers, timeout=10).json()["id"]
    params["webhook_id"] = webhook_id
    delivery = params.get("delivery_id")
    if isinstance(delivery, int) and not isinstance(delivery, bool) and 1 <= delivery < 2**63:
        found = requests.get(
            f"{base}/{webhook_id}/deliveries", params={"limit": 1}, headers=headers, timeout=10
        ).json()["deliveries"]
        if found:
            params["delivery_id"] = found[0]["id"]
    case.path_parameters = params


def _real_event(case: schemathesis.Case) -> None:
    params = case.path_parameters or {}
    generated = params.get("event_id")
    if not isinstance(generated, int) or isinstance(generated, bool):
        return
    if not 1 <= generated < 2**63:
        return  # invalid: what makes the case negative
    root = case.operation.schema.get_base_url().rstrip("/")
    headers = {"Authorization": f"Bearer {os.environ['SCOREBOARD_TEST_ADMIN_KEY']}"}
    events = f"{root}/api/admin/users/{EVENT_USER}/events"

    def newest() -> int | None:
        answer = requests.get(events, params={"limit": 1}, headers=headers, timeout=10)
        found = answer.json().get("events") if answer.status_code == 200 else None
        return found[0]["event_id"] if found else None

    event_id = newest()
    if event_id is None:
        body = {"user_id": EVENT_USER, "score_delta": 1}
        signed = {"Authorization": f"Bearer {token(EVENT_USER)}"}
        requests.post(root + UPDATE, json=body, headers=signed, timeout=10)
        event_id = newest()
    if event_id is not None:
        params["event_id"] = event_id
        case.path_parameters = params
