"""``scoreboard boards`` and ``serve`` with a boards file, as an operator meets them: listing,
rolling a season over, applying a new file, and every refusal as one line naming what is wrong
(the file, the board, the problem, and what to do) that changes nothing.

The embedded cases run on a SQLite file in a temporary folder; the scaled ones (a second
process whose file differs from what the first stored) on a PostgreSQL database of their own.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_cli import SERVE, assert_one_line_error, run
from tests.support import services
from tests.support.server import SECRET, ServerProcess
from tests.support.timing import scaled
from tests.support.tokens import token

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "boards.toml"

SEASONS = """
[boards.main]
title = "All time"

[boards.season]
title = "Season"
reset = "manual"
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'scoreboard.db'}"


def stored(tmp_path: Path, sql: str) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(tmp_path / "scoreboard.db")) as conn:
        return conn.execute(sql).fetchall()


def boards(tmp_path: Path, *args: str, **env: str) -> str:
    """``scoreboard boards ...``, which must succeed; its output."""
    result = run(
        tmp_path, "boards", *args, database_url=database(tmp_path), jwt_secret=SECRET, **env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def served(tmp_path: Path) -> ServerProcess:
    """A database on which ``serve`` has stored the two-board file (then stopped)."""
    config = write(tmp_path, "boards.toml", SEASONS)
    server = ServerProcess(
        tmp_path, {"SCOREBOARD_BOARDS": str(config), "SCOREBOARD_DATABASE_URL": database(tmp_path)}
    )
    server.start()
    server.stop()
    return server


def test_boards_lists_each_board_with_its_period_and_entries(served: ServerProcess) -> None:
    tmp_path = served.data_dir
    lines = boards(tmp_path).splitlines()
    assert lines[0].split() == ["BOARD", "METRIC", "RESET", "PERIOD", "ENDS", "(UTC)", "ENTRIES"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows == {
        "main": ["main", "points", "never", "all", "-", "0"],
        "season": ["season", "points", "manual", "1", "-", "0"],
    }


def test_rollover_starts_the_next_season_and_refuses_other_boards(served: ServerProcess) -> None:
    tmp_path = served.data_dir
    assert boards(tmp_path, "rollover", "season").strip() == (
        "board season: season 1 ended, season 2 started"
    )
    assert boards(tmp_path, "rollover", "season").strip() == (
        "board season: season 2 ended, season 3 started"
    )
    before = stored(tmp_path, "SELECT * FROM periods ORDER BY board_id, period_id")
    for board, words in [("main", "resets never by itself"), ("nope", "there is no board 'nope'")]:
        result = run(tmp_path, "boards", "rollover", board, database_url=database(tmp_path))
        assert words in assert_one_line_error(result)
    assert stored(tmp_path, "SELECT * FROM periods ORDER BY board_id, period_id") == before
    listed = {line.split()[0]: line.split()[3] for line in boards(tmp_path).splitlines()[1:]}
    assert listed["season"] == "3"


def test_apply_stores_a_new_file_and_serve_takes_it(served: ServerProcess) -> None:
    tmp_path = served.data_dir
    out = boards(tmp_path, "apply", str(EXAMPLE))
    assert out.startswith(f"applied {EXAMPLE} as version 2: ")
    listed = {line.split()[0] for line in boards(tmp_path).splitlines()[1:]}
    assert listed == {"main", "weekly", "today", "fastest-lap", "season"}


def test_boards_before_anything_is_stored_says_what_to_do(tmp_path: Path) -> None:
    line = assert_one_line_error(run(tmp_path, "boards", database_url=database(tmp_path)))
    assert "start the server once first" in line


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[boards.main]\ntitle = 'A'\nreset = 'hourly'\n", ["board 'main'", "reset", "hourly"]),
        ("[boards.Main]\ntitle = 'A'\n", ["board 'Main'", "a-z, 0-9"]),
        ("[boards.main]\ntitle = 'A'\nmetric = 'coins'\n", ["board 'main'", "coins"]),
        ("[boards.main]\n", ["board 'main'", "title is required"]),
        (
            "[boards.main]\ntitle = 'A'\ntimezone = 'Mars/Olympus'\n",
            ["board 'main'", "Mars/Olympus"],
        ),
        ("[boards.main\n", ["line 1"]),
    ],
)
@pytest.mark.parametrize("command", [SERVE, ("boards", "apply", "{file}")])
def test_a_bad_boards_file_is_one_line_naming_the_file_the_board_and_the_problem(
    tmp_path: Path, text: str, words: list[str], command: tuple[str, ...]
) -> None:
    path = write(tmp_path, "bad.toml", text)
    args = [a.replace("{file}", str(path)) for a in command]
    env = {"database_url": database(tmp_path), "jwt_secret": SECRET}
    if command == SERVE:
        env["boards"] = str(path)
    line = assert_one_line_error(run(tmp_path, *args, **env), logged_first=True)
    for word in [str(path), *words]:
        assert word in line, line


def test_serve_refuses_a_change_that_would_reinterpret_a_boards_history(
    served: ServerProcess,
) -> None:
    tmp_path = served.data_dir
    served.extra_env["SCOREBOARD_BOARDS"] = str(write(tmp_path, "boards.toml", SEASONS))
    served.start()
    body = {"user_id": "alice", "score_delta": 5, "auth_token": token("alice")}
    assert httpx.post(served.base_url + "/api/scores/update", json=body).status_code == 200
    served.stop()
    changed = SEASONS.replace('title = "Season"', 'title = "Season"\norder = "asc"')
    path = write(tmp_path, "changed.toml", changed)
    before = stored(tmp_path, "SELECT config, version FROM board_config")
    env = {"database_url": database(tmp_path), "jwt_secret": SECRET, "boards": str(path)}
    line = assert_one_line_error(run(tmp_path, *SERVE, **env), logged_first=True)
    assert "season" in line
    assert "order" in line
    assert "a new id" in line
    line = assert_one_line_error(
        run(tmp_path, "boards", "apply", str(path), database_url=database(tmp_path))
    )
    assert "order" in line
    assert stored(tmp_path, "SELECT config, version FROM board_config") == before


def test_the_default_board_must_be_one_of_the_boards(tmp_path: Path) -> None:
    path = write(tmp_path, "boards.toml", SEASONS)
    env = {"database_url": database(tmp_path), "boards": str(path), "default_board": "weekly"}
    line = assert_one_line_error(run(tmp_path, *SERVE, **env), logged_first=True)
    assert "SCOREBOARD_DEFAULT_BOARD" in line
    assert "weekly" in line


@pytest.mark.postgres
def test_a_scaled_process_whose_file_differs_from_the_stored_one_refuses_to_start(
    tmp_path: Path,
) -> None:
    with services.postgres_database(migrate=True) as url:
        first = write(tmp_path, "first.toml", SEASONS)
        env = {"database_url": url, "jwt_secret": SECRET}
        assert boards_on(tmp_path, url, "apply", str(first)).startswith("applied")
        other = write(
            tmp_path, "other.toml", SEASONS + "\n[boards.today]\ntitle = 'Today'\nreset = 'daily'\n"
        )
        # Scaled mode: PostgreSQL and Redis; the refusal comes before Redis is needed.
        scaled_env = {**env, "redis_url": services.redis_url(services.INTEGRATION_REDIS_DB)}
        result = run(tmp_path, *SERVE, boards=str(other), **scaled_env)
        line = assert_one_line_error(result, logged_first=True)
        assert "scoreboard boards apply FILE" in line
        # The same file as stored is served; applying the new one is the way.
        assert boards_on(tmp_path, url, "apply", str(other)).startswith("applied")


def boards_on(tmp_path: Path, url: str, *args: str) -> str:
    result = run(tmp_path, "boards", *args, database_url=url, jwt_secret=SECRET)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.postgres
def test_a_command_waits_out_a_busy_database_longer_than_a_request_would(tmp_path: Path) -> None:
    """A request gives PostgreSQL 1.5 s (``CALL_TIMEOUT``) and answers 503; an operator's
    command waits longer. In CI, a rollover under load failed with "the score store is
    unavailable" because one of its reads took longer than a request's deadline."""
    import subprocess
    import sys
    import time

    import psycopg

    from scoreboard.adapters.postgres_store import CALL_TIMEOUT
    from tests.e2e.test_cli import command_env

    with services.postgres_database(migrate=True) as url:
        assert boards_on(tmp_path, url, "apply", str(write(tmp_path, "s.toml", SEASONS)))
        with psycopg.connect(url) as busy:
            busy.execute("LOCK TABLE board_config IN ACCESS EXCLUSIVE MODE")
            command = subprocess.Popen(
                [sys.executable, "-m", "scoreboard", "boards", "rollover", "season"],
                cwd=tmp_path,
                env=command_env(database_url=url, jwt_secret=SECRET),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            waiting = (
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            with psycopg.connect(url, autocommit=True) as look:
                deadline = time.monotonic() + scaled(30)
                while look.execute(waiting).fetchone() != (1,):
                    assert time.monotonic() < deadline, "the command never reached the lock"
                    assert command.poll() is None, command.communicate()
                    time.sleep(0.05)
            time.sleep(2 * CALL_TIMEOUT)  # the database stays busy past a request's deadline
            assert command.poll() is None, command.communicate()
            busy.rollback()
        out, err = command.communicate(timeout=scaled(60))
        assert command.returncode == 0, err
        assert "season 1 ended, season 2 started" in out
