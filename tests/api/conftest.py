"""The API tier: the real app in-process over ASGI, its lifespan run, a real SQLite file.

Every app gets its own database, copied from one migrated once per session (the lifespan does
not migrate; ``scoreboard serve`` does, before the app starts). ``Api`` bundles the client with
the file, so that a test can prove "nothing changed" from the outside: the top-10 body, every
user's total and the number of score events, read from the file with the sqlite3 module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from scoreboard import migrate
from scoreboard.settings import Settings
from scoreboard.web.app import create_app
from tests.support.server import SECRET
from tests.support.tokens import token

UPDATE = "/api/scores/update"
TOP10 = "/api/scores/top10"


@dataclass(frozen=True)
class State:
    """Everything a rejected request must leave as it was: the public board, every user's row
    (total, name, version, tie-breaker, timestamps), every score event, and the live board's
    ``seq`` (a rejected update must not publish a board change either)."""

    top10: Any
    users: list[tuple[Any, ...]]
    score_rows: int
    scores: list[tuple[Any, ...]]
    seq: int


@dataclass
class Api:
    app: FastAPI
    client: httpx.AsyncClient
    database: Path
    settings: Settings

    async def update(
        self,
        user_id: str,
        delta: int,
        *,
        action_id: str | None = None,
        name: str | None = None,
        **claims: Any,
    ) -> httpx.Response:
        """A well-formed update with a valid token for ``user_id`` in the body."""
        if name is not None:
            claims["name"] = name
        body: dict[str, Any] = {
            "user_id": user_id,
            "score_delta": delta,
            "auth_token": token(user_id, **claims),
        }
        if action_id is not None:
            body["action_id"] = action_id
        return await self.client.post(UPDATE, json=body)

    async def ok(self, user_id: str, delta: int, **kwargs: Any) -> dict[str, Any]:
        response = await self.update(user_id, delta, **kwargs)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def top10(self) -> list[dict[str, Any]]:
        response = await self.client.get(TOP10)
        assert response.status_code == 200, response.text
        scores: list[dict[str, Any]] = response.json()["scores"]
        return scores

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.database)) as conn:
            return conn.execute(sql, params).fetchall()

    async def state(self) -> State:
        response = await self.client.get(TOP10)
        assert response.status_code == 200, response.text
        users = self.rows("SELECT * FROM users ORDER BY user_id")
        users += self.rows("SELECT * FROM totals ORDER BY user_id, metric")
        users += self.rows("SELECT * FROM standings ORDER BY board_id, period_id, user_id")
        scores = self.rows("SELECT * FROM scores ORDER BY score_id")
        (count,) = self.rows("SELECT count(*) FROM scores")[0]
        seq = self.app.state.components.service.current_board().event.seq
        return State(response.json(), users, count, scores, seq)


def assert_error(response: httpx.Response, status: int) -> dict[str, str]:
    """The contract's error body: exactly ``error`` (a machine code) and ``message``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message"}, body
    for key in ("error", "message"):
        assert isinstance(body[key], str), body
        assert body[key], body
    return dict(body)


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'scoreboard.db'}",
        "data_dir": tmp_path,
        "jwt_secret": SECRET,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "scoreboard.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SCOREBOARD_* variable of the developer's shell leaks into the settings."""
    for name in list(os.environ):
        if name.startswith("SCOREBOARD_") and name != "SCOREBOARD_TEST_TIMEOUT_FACTOR":
            monkeypatch.delenv(name)


ApiFactory = Callable[..., AbstractAsyncContextManager[Api]]


@pytest.fixture
def make_api(tmp_path: Path, migrated_database: Path, isolated_env: None) -> ApiFactory:
    """``async with make_api(**settings) as api``: a started app on a fresh database."""
    counter = iter(range(1_000_000))

    @contextlib.asynccontextmanager
    async def factory(*, reuse: Path | None = None, **overrides: Any) -> AsyncIterator[Api]:
        """``reuse``: the folder of an earlier app, to start again on its database."""
        if reuse is None:
            folder = tmp_path / f"app{next(counter)}"
            folder.mkdir()
            shutil.copyfile(migrated_database, folder / "scoreboard.db")
        else:
            folder = reuse
        settings = settings_for(folder, **overrides)
        app = create_app(settings)
        # raise_app_exceptions=False: a 500 must reach the test as the response a client gets.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://scoreboard.test") as client,
        ):
            yield Api(app, client, folder / "scoreboard.db", settings)

    return factory


@pytest.fixture
async def api(make_api: ApiFactory) -> AsyncIterator[Api]:
    async with make_api() as value:
        yield value


@pytest.fixture
async def seeded(api: Api) -> Api:
    """A board with a few users, so "unchanged" compares something non-trivial."""
    await api.ok("alice", 10, action_id="seed-a", name="Alice")
    await api.ok("bob", 30, action_id="seed-b")
    await api.ok("carol", 20, action_id="seed-c")
    return api
