"""Exports of a board's period (``GET /api/boards/{board}/export``): the CSV a spreadsheet
opens safely, the lossless NDJSON, archives, streaming, and the refusals."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from scoreboard.web.guards.admin import key_hash, new_key
from tests.api.conftest import UPDATE, Api, ApiFactory, assert_error
from tests.support.tokens import token

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "boards.toml"


@pytest.fixture
async def boards(make_api: ApiFactory) -> AsyncIterator[Api]:
    async with make_api(boards=EXAMPLE) as api:
        yield api


async def post(api: Api, user_id: str, delta: int, name: str | None = None) -> None:
    claims = {} if name is None else {"name": name}
    body = {"user_id": user_id, "score_delta": delta, "auth_token": token(user_id, **claims)}
    response = await api.client.post(UPDATE, json=body)
    assert response.status_code == 200, response.text


async def test_csv_is_rfc_4180_and_safe_to_open_in_a_spreadsheet(boards: Api) -> None:
    await post(boards, "alice", 30, 'Eve, "the" best')
    await post(boards, "-bob", 50, '=HYPERLINK("http://x")')
    await post(boards, "@carol", 30, "+1 555 0100")
    await post(boards, "dave", 10, "dave")
    response = await boards.client.get("/api/boards/main/export")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="main-all.csv"'
    text = response.text
    assert text.startswith("rank,user_id,username,score,reached_at\r\n")
    assert text.endswith("\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["rank", "user_id", "username", "score", "reached_at"]
    assert [r[:4] for r in rows[1:]] == [
        ["1", "'-bob", '\'=HYPERLINK("http://x")', "50"],
        ["2", "alice", 'Eve, "the" best', "30"],
        ["3", "'@carol", "'+1 555 0100", "30"],
        ["4", "dave", "dave", "10"],
    ]
    assert '"Eve, ""the"" best"' in text  # quoted, quotes doubled
    history = (await boards.client.get("/api/users/alice/history")).json()["events"]
    reached = datetime.strptime(rows[2][4], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert reached.isoformat()[:19] == history[-1]["at"][:19]


async def test_ndjson_is_lossless(boards: Api) -> None:
    await post(boards, "-bob", 50, "=cmd|' /C calc'!A0")
    await post(boards, "alice", 30)
    response = await boards.client.get("/api/boards/main/export", params={"format": "ndjson"})
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = response.text.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [(r["rank"], r["user_id"], r["username"], r["score"]) for r in rows] == [
        (1, "-bob", "=cmd|' /C calc'!A0", 50),
        (2, "alice", "alice", 30),
    ]
    history = (await boards.client.get("/api/users/alice/history")).json()["events"]
    assert rows[1]["reached_at"][:19] == history[-1]["at"][:19]


async def test_an_archive_exports_as_it_closed_and_the_empty_period_has_a_header(
    boards: Api,
) -> None:
    await post(boards, "alice", 30)
    await boards.app.state.components.service.rollover("season")
    await post(boards, "bob", 5)
    archive = await boards.client.get("/api/boards/season/export", params={"period": "1"})
    assert archive.headers["content-disposition"].endswith('filename="season-1.csv"')
    assert [line.split(",")[1] for line in archive.text.splitlines()[1:]] == ["alice"]
    empty = await boards.client.get("/api/boards/fastest-lap/export")
    assert empty.text == "rank,user_id,username,score,reached_at\r\n"
    assert (await boards.client.get("/api/boards/fastest-lap/export?format=ndjson")).text == ""


async def test_hidden_users_are_not_exported(boards: Api) -> None:
    await post(boards, "alice", 30)
    await post(boards, "cheat", 900)
    key = new_key()
    await boards.app.state.components.store.add_key("ops", key_hash(key))
    hidden = await boards.client.post(
        "/api/admin/users/cheat/hide",
        json={"reason": "r"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert hidden.status_code == 200
    text = (await boards.client.get("/api/boards/main/export")).text
    assert "cheat" not in text
    assert text.splitlines()[1].startswith("1,alice,")


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/boards/main/export", {"format": "xlsx"}, 400, "invalid_request"),
        ("/api/boards/main/export", {"period": "2026-11-30"}, 400, "invalid_period"),
        ("/api/boards/today/export", {"period": "2020-01-01"}, 404, "unknown_period"),
        ("/api/boards/monthly/export", {}, 404, "unknown_board"),
        ("/api/boards/Main/export", {}, 400, "invalid_board"),
    ],
)
async def test_bad_exports_are_refused(
    boards: Api, path: str, params: dict[str, Any], status: int, code: str
) -> None:
    error = assert_error(await boards.client.get(path, params=params), status)
    assert error["error"] in (code, "invalid_format"), error


async def test_exports_are_limited_per_address(make_api: ApiFactory) -> None:
    async with make_api(rate_limit_export="2/minute") as api:
        for _ in range(2):
            assert (await api.client.get("/api/boards/main/export")).status_code == 200
        refused = await api.client.get("/api/boards/main/export")
        assert assert_error(refused, 429)["error"] == "rate_limited_export"
        assert int(refused.headers["retry-after"]) > 0
        assert (await api.client.get("/api/scores/top10")).status_code == 200


async def test_an_export_is_streamed_a_chunk_at_a_time(api: Api) -> None:
    """The body leaves in several messages (the store's chunks), not as one buffered block."""
    store = api.app.state.components.store
    for n in range(12):
        await api.ok(f"u{n:02d}", n + 1)
    original = store.iter_ranked

    def small_chunks(board: str, period: str, *, chunk: int = 5000) -> Any:
        return original(board, period, chunk=5)

    store.iter_ranked = small_chunks
    bodies: list[bytes] = []
    requested = False
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()  # the client stays until the body is complete
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/boards/main/export",
        "raw_path": b"/api/boards/main/export",
        "root_path": "",
        "query_string": b"format=ndjson",
        "headers": [(b"host", b"scoreboard.test")],
        "client": ("127.0.0.1", 5000),
        "server": ("scoreboard.test", 80),
    }
    await api.app(scope, receive, send)
    chunks = [b for b in bodies if b]
    assert [chunk.count(b"\n") for chunk in chunks] == [5, 5, 2]
