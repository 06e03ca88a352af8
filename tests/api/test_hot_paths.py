"""The hot-path middleware answers exactly as the routed stack does.

A request with an ``Origin`` header goes through FastAPI's routing (CORS must see it); the same
request without one takes the short way (``web.hot_paths``). Both must give the same status,
body and request id handling.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import UPDATE, Api
from tests.support.tokens import token

ROUTED = {"Origin": "http://example.test"}


async def both(api: Api, method: str, path: str, **kwargs: Any) -> tuple[Any, Any]:
    short = await api.client.request(method, path, **kwargs)
    headers = {**kwargs.pop("headers", {}), **ROUTED}
    routed = await api.client.request(method, path, headers=headers, **kwargs)
    return short, routed


async def test_top10_is_the_same_either_way(seeded: Api) -> None:
    short, routed = await both(seeded, "GET", "/api/scores/top10")
    assert (short.status_code, short.content) == (routed.status_code, routed.content)
    assert short.headers["content-type"] == routed.headers["content-type"]
    assert short.headers["x-request-id"]
    assert "access-control-allow-origin" in routed.headers  # proof it took the routed way
    assert "access-control-allow-origin" not in short.headers


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"user_id": "alice", "score_delta": 0, "auth_token": "x"}',
        b'{"user_id": "alice", "score_delta": 5, "auth_token": "forged"}',
        b'{"user_id": "alice", "score_delta": 5}',
    ],
)
async def test_refusals_are_the_same_either_way(seeded: Api, body: bytes) -> None:
    before = await seeded.state()
    short, routed = await both(seeded, "POST", UPDATE, content=body)
    assert short.status_code in (400, 401)
    assert (short.status_code, short.json()) == (routed.status_code, routed.json())
    assert await seeded.state() == before


async def test_accepted_updates_are_the_same_either_way(seeded: Api) -> None:
    tok = token("dave")
    short = await seeded.client.post(
        UPDATE, json={"user_id": "dave", "score_delta": 4, "auth_token": tok, "action_id": "q"}
    )
    routed = await seeded.client.post(
        UPDATE,
        json={"user_id": "dave", "score_delta": 4, "auth_token": tok, "action_id": "q"},
        headers=ROUTED,
    )
    assert short.status_code == routed.status_code == 200
    assert short.json() == routed.json()  # the second is a retry: same answer, nothing added


async def test_request_ids_are_echoed_on_the_short_way(api: Api) -> None:
    response = await api.client.get("/api/scores/top10", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


def test_the_app_refuses_middleware_its_hot_paths_would_skip(tmp_path: Any) -> None:
    """A middleware added to the app would never see the busiest routes (the hot paths answer
    before the stack): the app refuses to build its stack, so it cannot start that way."""
    from starlette.middleware.gzip import GZipMiddleware

    from scoreboard.settings import Settings
    from scoreboard.web.app import create_app

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path}/db.sqlite"))
    app.build_middleware_stack()  # as created: exactly what the hot paths stand in for
    app.add_middleware(GZipMiddleware)
    with pytest.raises(RuntimeError, match=r"GZipMiddleware.*hot paths"):
        app.build_middleware_stack()
