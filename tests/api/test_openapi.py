"""The published OpenAPI document states what the server checks, no less and no more.

Each test sends values on both sides of a rule and asserts that the document's own schema (as a
JSON Schema validator reads it, formats included) accepts exactly the values the server accepts.
A generated client builds its requests from this document: a value it lets through must not be
refused, and a value it stops must not be one the server would have taken.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import pytest

from scoreboard import webhooks
from scoreboard.model import Audit
from scoreboard.web.guards.admin import key_hash, new_key
from tests.api.conftest import UPDATE, Api, ApiFactory
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


@pytest.mark.parametrize("delta", [-6, -5, -1, 0, 1, 7, 8, 5.0, 7.5, True, "5"])
async def test_the_delta_range_is_this_servers(make_api: ApiFactory, delta: object) -> None:
    async with make_api(min_delta=-5, max_delta=7) as api:
        body = {"user_id": "alice", "score_delta": delta}
        documented = accepts(update_schema(await document(api)), body)
        assert documented is (await post(api, body) == 200)


@pytest.mark.parametrize(
    "extra",
    [{"score": 1000}, {"username": "Alice"}, {"auth_token": None}, {"action_id": None}],
    ids=str,
)
async def test_unknown_fields_are_refused_and_documented_so(
    api: Api, extra: dict[str, object]
) -> None:
    body = {"user_id": "alice", "score_delta": 1, **extra}
    documented = accepts(update_schema(await document(api)), body)
    assert documented is (await post(api, body) == 200)


async def test_no_query_parameter_is_documented_as_nullable(api: Api) -> None:
    """A query string has no null: a generated client must leave the parameter out."""
    for methods in (await document(api))["paths"].values():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                assert "null" not in str(parameter["schema"]), parameter


def padded_token(user: str, length: int) -> str:
    """A valid token for ``user`` of about ``length`` characters (an unknown claim pads it)."""
    bare = token(user)
    return token(user, pad="x" * ((length - len(bare)) * 3 // 4))


@pytest.mark.parametrize(
    "auth_token",
    [
        pytest.param(lambda: token("alice"), id="valid"),
        pytest.param(lambda: padded_token("alice", 12_000), id="valid-12000-chars"),
        pytest.param(lambda: padded_token("alice", 12_600), id="valid-12600-chars"),
        pytest.param(lambda: token("alice") + "=", id="padded"),
        pytest.param(lambda: " " + token("alice"), id="leading-space"),
        pytest.param(lambda: "not-a-jwt", id="one-part"),
        pytest.param(lambda: "a.b.c.d.e", id="five-parts"),
    ],
)
async def test_the_body_token_shape_is_the_documented_one(
    api: Api, auth_token: Callable[[], str]
) -> None:
    body = {"user_id": "alice", "score_delta": 1, "auth_token": auth_token()}
    documented = accepts(update_schema(await document(api)), body)
    response = await api.client.post(UPDATE, json=body)
    assert response.status_code in (200, 401), response.text
    assert documented is (response.status_code == 200)


async def test_the_bearer_header_is_documented_as_an_alternative(api: Api) -> None:
    doc = await document(api)
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert doc["paths"][UPDATE]["post"]["security"] == [{"bearer": []}, {}]


async def test_a_429_carries_the_documented_headers(make_api: ApiFactory) -> None:
    async with make_api(rate_limit_user="1/minute") as api:
        assert await post(api, {"user_id": "alice", "score_delta": 1}) == 200
        response = await api.client.post(
            UPDATE,
            json={"user_id": "alice", "score_delta": 1},
            headers={"authorization": f"Bearer {token('alice')}"},
        )
        assert response.status_code == 429
        documented = (await document(api))["paths"][UPDATE]["post"]["responses"]["429"]
        for name, header in documented["headers"].items():
            assert accepts(header["schema"], int(response.headers[name])), name


def parameter(doc: dict[str, Any], path: str, name: str) -> dict[str, Any]:
    (found,) = [p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == name]
    schema: dict[str, Any] = found["schema"]
    return schema


async def refused(
    api: Api,
    url: str,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> bool:
    """Whether a read is refused for its parameters (400), rather than answered (200, 404)."""
    response = await api.client.get(url, params=params, headers=headers)
    assert response.status_code in (200, 400, 404), response.text
    return response.status_code == 400


@pytest.mark.parametrize("offset", [0, 5, 999_999_999, 1_000_000_000, 140_843_398_031_802, -1])
async def test_the_offset_range_is_the_documented_one(api: Api, offset: int) -> None:
    documented = accepts(parameter(await document(api), "/api/scores", "offset"), offset)
    assert documented is not await refused(api, "/api/scores", {"offset": str(offset)})


USER_IDS = ["alice", "A-b_c.d:e@f", "x" * 64, "x" * 65, "ÉÚú", "al ice", "ålice", "a+b"]
USER_PATHS = ["/api/users/{user_id}", "/api/users/{user_id}/around", "/api/users/{user_id}/history"]


@pytest.mark.parametrize("path", USER_PATHS)
@pytest.mark.parametrize("user_id", USER_IDS, ids=lambda v: ascii(v)[:24])
async def test_the_user_id_rule_is_the_documented_one(api: Api, path: str, user_id: str) -> None:
    documented = accepts(parameter(await document(api), path, "user_id"), user_id)
    assert documented is not await refused(api, path.format(user_id=quote(user_id, safe="")))


@pytest.mark.parametrize("bucket", ["hour", "day", "week", "", "HOUR"])
async def test_the_buckets_are_the_documented_ones(api: Api, bucket: str) -> None:
    path = "/api/users/{user_id}/history"
    documented = accepts(parameter(await document(api), path, "bucket"), bucket)
    assert documented is not await refused(api, "/api/users/alice/history", {"bucket": bucket})


TIMES = [
    "2026-11-27T10:00:00Z",
    "2026-11-27t10:00:00.5z",
    "2026-11-27T10:00:00.123456789+05:30",
    "2026-11-27T10:00:00-00:00",
    "2026-06-30T23:59:60Z",
    "2026-06-30T22:59:60-01:00",
    "2026-06-30T23:59:60+01:00",
    "0000-02-29T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "9999-12-31T23:59:59-23:59",
    "2024-02-29T00:00:00Z",
    "2026-02-29T00:00:00Z",
    "2026-11-27",
    "2026-11-27T10:00:00",
    "2026-11-27T10:00Z",
    "2026-11-27 10:00:00Z",
    "2026-11-27T24:00:00Z",
    "2026-11-27T10:00:00+0100",
    "2026-11-27T10:00:00,5Z",
    "yesterday",
    "",
]


WITHOUT_OFFSET = {"2026-11-27T10:00:00"}
"""Times the server reads (as UTC, issue 16) though the ``date-time`` format wants an offset:
the server is more lenient than the document there, and nowhere else."""


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize("moment", TIMES)
async def test_the_time_format_is_the_documented_one(api: Api, name: str, moment: str) -> None:
    path = "/api/users/{user_id}/history"
    documented = accepts(parameter(await document(api), path, name), moment)
    taken = not await refused(api, "/api/users/alice/history", {name: moment})
    assert taken is (documented or moment in WITHOUT_OFFSET)
    if moment in WITHOUT_OFFSET:
        assert not documented  # the exception is needed: the document does want an offset


CURSORS = [
    "0",
    "1764237600000000",
    "1764237600000000.42",
    "9" * 16 + "." + "9" * 18,
    "",
    "1.",
    ".5",
]
CURSORS += [
    "1.2.3",
    "-1",
    "1e5",
    "9" * 17,
    "1." + "9" * 19,
    "bm9wZQ",
    "MjAyNi0xMS0yN1QxMDowMDowMFp8MQ",
]


@pytest.mark.parametrize("bucket", [None, "hour"])
@pytest.mark.parametrize("cursor", CURSORS)
async def test_the_cursor_shape_is_the_documented_one(
    api: Api, cursor: str, bucket: str | None
) -> None:
    """Any cursor of the documented shape is a position the server answers from."""
    path = "/api/users/{user_id}/history"
    documented = accepts(parameter(await document(api), path, "cursor"), cursor)
    params = {"cursor": cursor, **({"bucket": bucket} if bucket else {})}
    assert documented is not await refused(api, "/api/users/alice/history", params)


async def test_every_link_from_a_200_leads_to_a_200(api: Api) -> None:
    """The links name real operations, and the value they carry is one those take: each link
    to a read is followed (an admin read with an admin key)."""
    doc = await document(api)
    by_id = {
        operation["operationId"]: (path, method)
        for path, methods in doc["paths"].items()
        for method, operation in methods.items()
    }
    key = new_key()
    await api.app.state.components.store.add_key("links", key_hash(key))
    answer = await api.ok("alice", 5)
    # What a webhook's creation answers (its id), made here without the API's URL check.
    hook = webhooks.Webhook(
        webhooks.new_id(), "https://example.com/", webhooks.EVENTS, None, "whsec_x", _now()
    )
    await api.app.state.components.store.add_webhook(hook, Audit("links", "webhook_create", "x"))
    sources = {"user_id": "$response.body#/user_id", "webhook_id": "$response.body#/id"}
    values = {"user_id": answer["user_id"], "webhook_id": hook.id}
    followed = 0
    for methods in doc["paths"].values():
        for operation in methods.values():
            for link in operation["responses"]["200"].get("links", {}).values():
                path, method = by_id[link["operationId"]]
                if method != "get":
                    continue  # an action: the link's target exists, which is what it says
                ((name, source),) = link["parameters"].items()
                assert sources[name] == source
                url = path.format(**{name: values[name]})
                headers = {"Authorization": f"Bearer {key}"} if "/admin/" in url else {}
                response = await api.client.get(url, headers=headers)
                assert response.status_code == 200, (url, response.text)
                followed += 1
    assert followed >= 5


async def test_every_example_is_valid_and_accepted(api: Api) -> None:
    """Each parameter's examples fit its schema, and a read given one is not refused for it."""
    doc = await document(api)
    key = new_key()
    await api.app.state.components.store.add_key("examples", key_hash(key))
    admin = {"Authorization": f"Bearer {key}"}
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            for param in operation.get("parameters", []):
                for example in param["schema"].get("examples", []):
                    assert accepts(param["schema"], example), (path, param["name"], example)
                    if method != "get":
                        continue
                    url = path.replace("{user_id}", "alice").replace("{board}", "main")
                    url = url.replace("{webhook_id}", "wh_0123456789abcdef")  # 404: answered
                    params = {} if param["in"] == "path" else {param["name"]: str(example)}
                    headers = admin if "/admin/" in url else None
                    assert not await refused(api, url, params, headers)
    body = update_schema(doc)
    example = doc["paths"][UPDATE]["post"]["requestBody"]["content"]["application/json"]
    assert accepts(body, example["example"])
    assert await post(api, example["example"]) == 200


def _now() -> datetime:
    return datetime.now(UTC)


def media_types(operation: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """``(where, media type, media type object)`` of the request body and every answer."""
    found = [
        ("request", media_type, media)
        for media_type, media in operation.get("requestBody", {}).get("content", {}).items()
    ]
    for status, response in operation["responses"].items():
        assert response.get("content"), (operation["operationId"], status)
        found += [(status, media_type, media) for media_type, media in response["content"].items()]
    return found


async def test_every_request_body_and_answer_has_a_valid_example(api: Api) -> None:
    doc = await document(api)
    checked = 0
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            for where, media_type, media in media_types(operation):
                place = (method, path, where, media_type)
                assert "example" in media, place
                schema = {**media["schema"], "components": doc["components"]}
                assert accepts(schema, media["example"]), place
                checked += 1
    assert checked >= 200


def same_shape(example: object, real: object) -> bool:
    """Same keys at every level (a list by its first item); a null or an empty list on either
    side matches anything, and values themselves are not compared."""
    if example is None or real is None:
        return True
    if isinstance(example, dict) and isinstance(real, dict):
        return example.keys() == real.keys() and all(
            same_shape(example[key], real[key]) for key in example
        )
    if isinstance(example, list) and isinstance(real, list):
        return not example or not real or same_shape(example[0], real[0])
    return not isinstance(example, dict | list) and not isinstance(real, dict | list)


async def test_the_answers_examples_have_the_shape_of_real_answers(seeded: Api) -> None:
    """Every read's 200 example has the keys the server's answer has (alice, on the seeded
    board), so an example cannot drift from the answer it illustrates."""
    doc = await document(seeded)
    key = new_key()
    await seeded.app.state.components.store.add_key("shapes", key_hash(key))
    admin = {"Authorization": f"Bearer {key}"}
    compared = 0
    for path, methods in doc["paths"].items():
        operation = methods.get("get")
        media = operation and operation["responses"]["200"]["content"].get("application/json")
        if media is None or "{webhook_id}" in path:
            continue
        url = path.replace("{user_id}", "alice").replace("{board}", "main")
        response = await seeded.client.get(url, headers=admin if "/admin/" in url else None)
        assert response.status_code == 200, (url, response.text)
        assert same_shape(media["example"], response.json()), (url, response.text)
        compared += 1
    assert compared >= 15
