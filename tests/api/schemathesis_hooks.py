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
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import schemathesis

from tests.support.tokens import token

UPDATE = "/api/scores/update"


@schemathesis.auth(refresh_interval=None).apply_to(method="POST", path=UPDATE)
class UserToken:
    """A token for the user the generated body names, or none when it names no user."""

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str | None:
        body = case.body
        if isinstance(body, dict) and isinstance(body.get("user_id"), str):
            return token(body["user_id"])
        return None  # nothing to sign for: the request goes as generated

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
        body: dict[str, Any] = case.body
        generated = body.get("auth_token")
        if isinstance(generated, str) and _documented_token(case).is_valid(generated):
            body["auth_token"] = data


def _documented_token(case: schemathesis.Case) -> Any:
    """A validator of ``auth_token`` as the document under test describes it."""
    raw = case.operation.schema.raw_schema
    body = raw["paths"][UPDATE]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for(body["properties"]["auth_token"], validate_formats=True)
