"""The HTTP edge beyond the update's own rules: unknown paths and methods, body size, errors the
client did not cause (500, 503), and the OpenAPI document. Every error body is JSON
``{"error", "message"}``; none of these requests changes anything."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from scoreboard.model import Applied, ScoreUpdate
from tests.api.conftest import TOP10, UPDATE, Api, ApiFactory, assert_error
from tests.support.tokens import token

LIMIT = 16 * 1024


# -- 404 and 405 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nothing-here"),
        ("GET", "/api/scoreboard"),
        ("POST", "/api/scores/updates"),
        ("GET", "/api/scores/top100"),
        ("DELETE", "/api/nope"),
    ],
)
async def test_unknown_paths_are_404_json(seeded: Api, method: str, path: str) -> None:
    before = await seeded.state()
    response = await seeded.client.request(method, path)
    body = assert_error(response, 404)
    assert body["error"] == "not_found"
    assert await seeded.state() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/users/alice/"),
        ("GET", "/api/users/alice/around/"),
        ("GET", "/api/scores/"),
        ("GET", TOP10 + "/"),
        ("POST", UPDATE + "/"),
        ("GET", "/healthz/"),
        ("GET", "/docs/"),
        ("GET", "/openapi.json/"),
        ("GET", "/asyncapi.json/"),
        ("GET", "/admin/"),
    ],
)
async def test_a_trailing_slash_is_404_json_not_a_redirect(
    seeded: Api, method: str, path: str
) -> None:
    """Starlette's redirect_slashes answered 307 with a Location built from the client's Host
    header (and no body): a link to this service could send its reader anywhere."""
    before = await seeded.state()
    alice = token("alice")
    response = await seeded.client.request(
        method,
        path,
        headers={"host": "evil.example"},
        json={"user_id": "alice", "score_delta": 5, "auth_token": alice},
    )
    body = assert_error(response, 404)
    assert body["error"] == "not_found"
    assert "location" not in response.headers
    assert await seeded.state() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", UPDATE),
        ("PUT", UPDATE),
        ("DELETE", UPDATE),
        ("PATCH", UPDATE),
        ("POST", TOP10),
        ("DELETE", TOP10),
        ("POST", "/admin"),
        ("DELETE", "/admin"),
    ],
)
async def test_wrong_methods_are_405_json(seeded: Api, method: str, path: str) -> None:
    before = await seeded.state()
    alice = token("alice")
    response = await seeded.client.request(
        method, path, json={"user_id": "alice", "score_delta": 5, "auth_token": alice}
    )
    body = assert_error(response, 405)
    assert body["error"] == "method_not_allowed"
    assert "allow" in response.headers
    assert method not in response.headers["allow"]
    assert await seeded.state() == before


# -- 413 ---------------------------------------------------------------------------------------


def _padded(size: int) -> bytes:
    """A valid update body for alice, padded with whitespace to exactly ``size`` bytes."""
    body = json.dumps({"user_id": "alice", "score_delta": 5, "auth_token": token("alice")})
    return body.encode() + b" " * (size - len(body))


async def test_a_body_of_exactly_16_kib_is_accepted(seeded: Api) -> None:
    response = await seeded.client.post(
        UPDATE, content=_padded(LIMIT), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["new_score"] == 15


@pytest.mark.parametrize("size", [LIMIT + 1, 64 * 1024, 1024 * 1024])
async def test_a_body_over_16_kib_is_413_and_changes_nothing(seeded: Api, size: int) -> None:
    before = await seeded.state()
    response = await seeded.client.post(
        UPDATE, content=_padded(size), headers={"content-type": "application/json"}
    )
    body = assert_error(response, 413)
    assert body["error"] == "payload_too_large"
    assert await seeded.state() == before


async def test_a_streamed_body_over_16_kib_without_length_is_413(seeded: Api) -> None:
    """Chunked transfer: no Content-Length to check up front; the limit applies as it reads."""
    payload = _padded(LIMIT + 4096)
    sent = []

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 1000):
            sent.append(start)
            yield payload[start : start + 1000]

    before = await seeded.state()
    response = await seeded.client.post(
        UPDATE, content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413)
    assert await seeded.state() == before


async def test_a_streamed_body_under_the_limit_is_accepted(seeded: Api) -> None:
    payload = _padded(LIMIT - 10)

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(payload), 1000):
            yield payload[start : start + 1000]

    response = await seeded.client.post(
        UPDATE, content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text


# -- 500 and 503 -------------------------------------------------------------------------------


class _BrokenStore:
    """A store whose writes fail with an error the service does not know (a bug, say)."""

    def __init__(self, real: Any) -> None:
        self.real = real

    async def apply(self, update: ScoreUpdate) -> Applied:
        raise RuntimeError("disk gremlin at /var/secret/scoreboard.db offset 0xdeadbeef")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_an_unexpected_error_is_a_generic_500_with_the_detail_only_in_the_log(
    seeded: Api, caplog: pytest.LogCaptureFixture
) -> None:
    service = seeded.app.state.components.service
    before = await seeded.state()
    real = service.store
    service.store = _BrokenStore(real)
    try:
        response = await seeded.update("alice", 5)
    finally:
        service.store = real

    body = assert_error(response, 500)
    assert body["error"] == "internal_error"
    assert "gremlin" not in response.text
    assert "deadbeef" not in response.text
    assert "Traceback" not in response.text
    errors = [r for r in caplog.records if r.levelname == "ERROR" and r.exc_info]
    assert errors, caplog.text
    assert any("gremlin" in str(r.exc_info[1]) for r in errors if r.exc_info)
    assert await seeded.state() == before
    assert (await seeded.ok("alice", 5))["new_score"] == 15


async def test_a_store_that_cannot_write_is_503_with_retry_after_and_changes_nothing(
    seeded: Api,
) -> None:
    before = await seeded.state()
    seeded.rows("ALTER TABLE scores RENAME TO scores_elsewhere")
    try:
        response = await seeded.update("alice", 5)
    finally:
        seeded.rows("ALTER TABLE scores_elsewhere RENAME TO scores")

    assert_error(response, 503)
    assert response.headers["retry-after"].isdigit()
    assert await seeded.state() == before
    assert (await seeded.ok("alice", 5))["new_score"] == 15


# -- OpenAPI -----------------------------------------------------------------------------------


async def test_openapi_documents_the_update_and_every_status_code(api: Api) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    update = doc["paths"][UPDATE]["post"]

    assert set(update["responses"]) >= {"200", "400", "401", "408", "409", "413", "429", "500"}
    assert "422" not in update["responses"]  # FastAPI's default; this service answers 400
    schemas = doc["components"]["schemas"]
    for status in ("400", "401", "408", "409", "413", "429", "500"):
        ref = update["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        error_schema = schemas[ref.rsplit("/", 1)[1]]
        assert set(error_schema["properties"]) == {"error", "message"}
        assert update["responses"][status]["description"]

    ok_ref = update["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert set(schemas[ok_ref.rsplit("/", 1)[1]]["properties"]) >= {"user_id", "new_score", "rank"}

    request = update["requestBody"]["content"]["application/json"]["schema"]
    assert set(request["properties"]) == {
        "user_id",
        "score_delta",
        "auth_token",
        "action_id",
        "metric",
    }
    assert set(request["required"]) == {"user_id", "score_delta"}
    assert request["properties"]["score_delta"]["type"] == "integer"


async def test_openapi_documents_the_top10(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    top = doc["paths"][TOP10]["get"]
    assert "200" in top["responses"]
    assert "422" not in top["responses"]
    ref = top["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    top_schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert "scores" in top_schema["properties"]


# -- HEAD ----------------------------------------------------------------------------------------

GET_PATHS = [
    TOP10,
    "/api/scores",
    "/api/users/alice",
    "/api/users/alice/around",
    "/api/users/alice/history",
    "/api/users/nobody",  # a 404 answers HEAD as GET does too
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/asyncapi.json",
    "/docs",
    "/",
    "/embed",
    "/admin",
    "/static/board.css",
    "/client.js",
]
VARYING = {"date", "x-request-id"}


@pytest.mark.parametrize("origin", [None, "http://example.test"], ids=["short-way", "routed"])
@pytest.mark.parametrize("path", GET_PATHS)
async def test_head_answers_like_get_without_a_body(
    seeded: Api, path: str, origin: str | None
) -> None:
    """Uptime checkers use HEAD. (An Origin header sends the top 10 through the routed stack.)"""
    headers = {"origin": origin} if origin else {}
    head = await seeded.client.head(path, headers=headers)
    get = await seeded.client.get(path, headers=headers)
    assert head.status_code == get.status_code, head.text
    assert head.content == b""
    if path != "/metrics":  # its numbers move between two requests
        assert int(head.headers["content-length"]) == len(get.content) > 0
    for name in (set(head.headers) | set(get.headers)) - VARYING - {"content-length"}:
        assert head.headers.get(name) == get.headers.get(name), name


@pytest.mark.parametrize("path", [UPDATE, "/nothing-here", "/ws/scoreboard"])
async def test_head_where_get_is_not_answered_is_refused_as_get_would_be(
    seeded: Api, path: str
) -> None:
    head = await seeded.client.head(path)
    get = await seeded.client.get(path)
    assert head.status_code == get.status_code in (404, 405)
    assert head.content == b""
    if get.status_code == 405:
        assert head.headers["allow"] == get.headers["allow"] == "POST"


async def test_a_405_allows_head_wherever_it_allows_get(seeded: Api) -> None:
    response = await seeded.client.post("/api/scores")
    body = assert_error(response, 405)
    assert body["message"] == "POST is not allowed here"
    assert response.headers["allow"] == "GET, HEAD"


async def asgi(api: Api, method: str, path: str, origin: bool) -> list[dict[str, Any]]:
    """The ASGI messages the app sends (a test client would drop a HEAD body itself)."""
    headers = [(b"host", b"scoreboard.test")] + ([(b"origin", b"http://a.test")] if origin else [])
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("scoreboard.test", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await api.app(scope, receive, send)
    return sent


@pytest.mark.parametrize("origin", [False, True], ids=["short-way", "routed"])
@pytest.mark.parametrize("path", [TOP10, "/api/scores", "/healthz", "/docs", "/"])
async def test_the_app_itself_sends_no_body_for_head(seeded: Api, path: str, origin: bool) -> None:
    head = await asgi(seeded, "HEAD", path, origin)
    get = await asgi(seeded, "GET", path, origin)
    assert [m["type"] for m in head] == [m["type"] for m in get]
    assert all(m["body"] == b"" for m in head if m["type"] == "http.response.body")
    body = b"".join(m["body"] for m in get if m["type"] == "http.response.body")
    start = {k: v for k, v in head[0]["headers"] if k != b"x-request-id"}
    assert start == {k: v for k, v in get[0]["headers"] if k != b"x-request-id"}
    assert start[b"content-length"] == str(len(body)).encode()


async def test_a_page_of_an_allowed_origin_may_import_the_browser_client(
    make_api: ApiFactory,
) -> None:
    """A module script from another origin is fetched with CORS, and a browser runs it only with
    the header: the sites whose pages may open the sockets may also load the client."""
    async with make_api(allowed_origins="https://good.example") as api:
        good = await api.client.get("/client.js", headers={"Origin": "https://good.example"})
        assert good.status_code == 200
        assert good.headers["access-control-allow-origin"] == "https://good.example"
        assert good.headers["content-type"] == "text/javascript; charset=utf-8"
        evil = await api.client.get("/client.js", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in evil.headers
