"""The published OpenAPI document states what the server checks, no less and no more.

Each test sends values on both sides of a rule and asserts that the document's own schema (as a
JSON Schema validator reads it, formats included) accepts exactly the values the server accepts.
A generated client builds its requests from this document: a value it lets through must not be
refused, and a value it stops must not be one the server would have taken.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from tests.api.conftest import UPDATE, Api
from tests.support.tokens import token


async def document(api: Api) -> dict[str, Any]:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def accepts(schema: dict[str, Any], value: object) -> bool:
    return bool(jsonschema_rs.validator_for(schema, validate_formats=True).is_valid(value))


def update_schema(doc: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = doc["paths"][UPDATE]["post"]["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema


async def post(api: Api, body: dict[str, Any]) -> int:
    """The status of an update carrying ``body`` and a valid Bearer token for its user."""
    user = body["user_id"] if isinstance(body.get("user_id"), str) else "nobody"
    response = await api.client.post(
        UPDATE, json=body, headers={"authorization": f"Bearer {token(user)}"}
    )
    assert response.status_code in (200, 400), response.text
    return response.status_code


ACTION_IDS = [
    "level-1",
    "x" * 128,
    "x" * 129,
    "",
    "ünïcödé",
    "no\u00a0break",
    "\U0001f3c6 cup",
    "a\nb",
    "tab\there",
    "\x7f",
    "\x85",
    "a\u2028b",
    "a\u202eb",
    "zero\u200bwidth",
    "\ufeffbom",
]


@pytest.mark.parametrize("action_id", ACTION_IDS, ids=ascii)
async def test_the_action_id_rule_is_the_documented_one(api: Api, action_id: str) -> None:
    body = {"user_id": "alice", "score_delta": 1, "action_id": action_id}
    documented = accepts(update_schema(await document(api)), body)
    assert documented is (await post(api, body) == 200)
