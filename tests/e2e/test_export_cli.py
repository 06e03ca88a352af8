"""``scoreboard export`` as an operator meets it, next to a running server: the current
period and an archive, CSV to standard output and NDJSON to a file, and each refusal as one
line that writes nothing."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_cli import assert_one_line_error, run
from tests.support.server import SECRET, ServerProcess
from tests.support.tokens import token

SEASONS = """
[boards.main]
title = "All time"

[boards.season]
title = "Season"
reset = "manual"
"""


def post(server: ServerProcess, user_id: str, delta: int, name: str | None = None) -> None:
    claims = {} if name is None else {"name": name}
    body = {"user_id": user_id, "score_delta": delta, "auth_token": token(user_id, **claims)}
    response = httpx.post(server.base_url + "/api/scores/update", json=body)
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module: the refusals need only its stored boards."""
    tmp_path = tmp_path_factory.mktemp("export")
    config = tmp_path / "boards.toml"
    config.write_text(SEASONS)
    server = ServerProcess(tmp_path, {"SCOREBOARD_BOARDS": str(config)})
    server.start()
    yield server
    server.stop()


def test_export_writes_the_current_period_and_an_archive(server: ServerProcess) -> None:
    post(server, "alice", 30, "Alice, A.")
    post(server, "-bob", 50, "=bob")
    server.run("boards", "rollover", "season")
    post(server, "carol", 5)

    rows = list(csv.reader(io.StringIO(server.run("export", "main").stdout, newline="")))
    assert [r[:4] for r in rows] == [
        ["rank", "user_id", "username", "score"],
        ["1", "'-bob", "'=bob", "50"],
        ["2", "alice", "Alice, A.", "30"],
        ["3", "carol", "carol", "5"],
    ]
    archive = server.run("export", "season", "--period", "1").stdout.splitlines()
    assert [line.split(",")[1] for line in archive[1:]] == ["'-bob", "alice"]
    current = server.run("export", "season").stdout.splitlines()
    assert [line.split(",")[1] for line in current[1:]] == ["carol"]

    out = server.data_dir / "main.ndjson"
    done = server.run("export", "main", "--format", "ndjson", "--out", str(out))
    assert done.stdout == ""
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["rank"], r["user_id"], r["score"]) for r in lines] == [
        (1, "-bob", 50),
        (2, "alice", 30),
        (3, "carol", 5),
    ]
    served = httpx.get(server.base_url + "/api/boards/main/export?format=ndjson").text
    assert served == out.read_text()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("export", "nope"), "there is no board 'nope'"),
        (("export", "season", "--period", "7"), "has no period '7'"),
        (("export", "season", "--period", "x"), "season"),
    ],
)
def test_a_refused_export_is_one_line_and_writes_no_file(
    server: ServerProcess, args: tuple[str, ...], words: str
) -> None:
    out = server.data_dir / "refused.csv"
    env = server.env()
    result = run(
        server.data_dir,
        *args,
        "--out",
        str(out),
        database_url=env["SCOREBOARD_DATABASE_URL"],
        jwt_secret=SECRET,
        data_dir=str(server.data_dir),
    )
    assert words in assert_one_line_error(result)
    assert not out.exists()


def test_export_before_anything_is_stored_says_what_to_do(tmp_path: Path) -> None:
    result = run(tmp_path, "export", "main", database_url=f"sqlite:///{tmp_path / 'x.db'}")
    assert "start the server once first" in assert_one_line_error(result)
