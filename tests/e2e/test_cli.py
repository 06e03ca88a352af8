"""``python -m scoreboard``: token, migrate, --help, and one-line errors (never a traceback).

Each case runs the real command in a subprocess, in an empty folder (so no ``.env`` is read)
with only the SCOREBOARD_* variables the case sets.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import jwt
import pytest

from tests.support.jwks import rsa_key
from tests.support.server import SECRET
from tests.support.timing import scaled

LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING) ")


def command_env(**env: str) -> dict[str, str]:
    """This environment without its ``SCOREBOARD_`` settings, plus ``env`` as settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    base.update({f"SCOREBOARD_{k.upper()}": v for k, v in env.items()})
    return base


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scoreboard", *args],
        cwd=tmp_path,
        env=command_env(**env),
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=False,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], *, logged_first: bool = False
) -> str:
    """Exit status 2, nothing on stdout, no traceback, one line on stderr. ``logged_first``:
    after the log records of a command that logs before it can fail (``serve`` migrates, then
    builds the token verifier)."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    if logged_first:
        lines = [line for line in lines if not LOG_RECORD.match(line)]
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0]
    return lines[0]


# -- token -------------------------------------------------------------------------------------


def test_token_prints_a_token_the_secret_verifies(tmp_path: Path) -> None:
    result = run(tmp_path, "token", "alice", jwt_secret=SECRET)
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip()
    assert result.stdout == printed + "\n"
    claims = jwt.decode(printed, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice"
    assert 3500 < claims["exp"] - time.time() <= 3600
    assert "name" not in claims


def test_token_ttl_name_audience_and_issuer(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        "token",
        "bob",
        "--ttl",
        "60",
        "--name",
        "Bob B.",
        jwt_secret=SECRET,
        jwt_audience="sb",
        jwt_issuer="me",
    )
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(
        result.stdout.strip(), SECRET, algorithms=["HS256"], audience="sb", issuer="me"
    )
    assert (claims["sub"], claims["name"]) == ("bob", "Bob B.")
    assert 0 < claims["exp"] - time.time() <= 60


def test_token_without_a_configured_secret_uses_the_generated_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = run(tmp_path, "token", "alice", data_dir=str(data))
    assert first.returncode == 0, first.stderr
    secret = (data / "jwt_secret").read_bytes().strip()
    assert jwt.decode(first.stdout.strip(), secret, algorithms=["HS256"])["sub"] == "alice"
    again = run(tmp_path, "token", "bob", data_dir=str(data))
    assert jwt.decode(again.stdout.strip(), secret, algorithms=["HS256"])["sub"] == "bob"
    assert secret.decode() not in first.stderr + first.stdout.split(".")[0]


def _secret_file(tmp_path: Path, content: bytes, mode: int) -> Path:
    path = tmp_path / "data" / "jwt_secret"
    path.parent.mkdir()
    path.write_bytes(content)
    path.chmod(mode)
    return path


def test_token_uses_a_secret_file_of_mode_0600(tmp_path: Path) -> None:
    _secret_file(tmp_path, SECRET.encode() + b"\n", 0o600)
    result = run(tmp_path, "token", "alice")
    assert result.returncode == 0, result.stderr
    assert jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])["sub"] == "alice"


# -- the secret file: refused in one line ------------------------------------------------------

SERVE = ("serve", "--port", "0")  # were it to start after all, on no port of anyone's


@pytest.mark.parametrize("command", [("token", "alice"), SERVE], ids=["token", "serve"])
def test_a_secret_file_readable_by_others_is_refused(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    path = _secret_file(tmp_path, SECRET.encode() + b"\n", 0o644)
    line = assert_one_line_error(run(tmp_path, *command), logged_first=command == SERVE)
    assert "data/jwt_secret" in line
    assert "0644" in line
    assert "chmod 600 data/jwt_secret" in line
    assert SECRET not in line
    assert path.read_bytes() == SECRET.encode() + b"\n"


@pytest.mark.parametrize("command", [("token", "alice"), SERVE], ids=["token", "serve"])
def test_a_too_short_secret_file_is_one_line(tmp_path: Path, command: tuple[str, ...]) -> None:
    _secret_file(tmp_path, b"tiny-s3cret\n", 0o600)
    line = assert_one_line_error(run(tmp_path, *command), logged_first=command == SERVE)
    assert "data/jwt_secret" in line
    assert "32 bytes" in line
    assert "tiny-s3cret" not in line


# -- an identity provider's keys need an audience ----------------------------------------------


@pytest.mark.parametrize("keys", ["jwks_url", "jwt_public_key"])
def test_serve_with_an_identity_providers_keys_and_no_audience_is_refused(
    tmp_path: Path, keys: str
) -> None:
    pem = rsa_key().write_pem(tmp_path)
    value = "https://login.example/.well-known/jwks.json" if keys == "jwks_url" else str(pem)
    line = assert_one_line_error(run(tmp_path, *SERVE, **{keys: value}))
    assert "SCOREBOARD_JWT_AUDIENCE" in line
    assert f"SCOREBOARD_{keys.upper()}" in line
    assert not (tmp_path / "data").exists()  # refused before migrating anything


def test_serve_with_an_identity_providers_keys_and_an_audience_passes_that_check(
    tmp_path: Path,
) -> None:
    """The control: with an audience the same configuration gets past the settings, to the
    next refusal this test arranges (a database path it cannot create)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    result = run(
        tmp_path,
        *SERVE,
        jwks_url="https://login.example/.well-known/jwks.json",
        jwt_audience="scoreboard",
        database_url=f"sqlite:///{blocker}/db.sqlite",
    )
    line = assert_one_line_error(result)
    assert "migration failed" in line


# -- one-line errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("token", "alice", "--bogus"), id="unknown-flag"),
        pytest.param(("token",), id="missing-user"),
        pytest.param(("token", "alice", "--ttl", "soon"), id="ttl-not-a-number"),
        pytest.param(("token", "alice", "--ttl", "0"), id="ttl-zero"),
        pytest.param(("token", "not a valid id!"), id="bad-user-id"),
        pytest.param(("serve", "--port", "eighty"), id="serve-port-not-a-number"),
        pytest.param(("frobnicate",), id="unknown-command"),
        pytest.param((), id="no-command"),
        pytest.param(("--verbose", "token", "alice"), id="unknown-global-flag"),
    ],
)
def test_a_bad_command_line_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    assert_one_line_error(run(tmp_path, *args, jwt_secret=SECRET))


@pytest.mark.parametrize(
    ("command", "env", "variable"),
    [
        pytest.param(
            ("token", "alice"),
            {"jwt_secret": "tiny-s3cret"},
            "SCOREBOARD_JWT_SECRET",
            id="short-secret",
        ),
        pytest.param(
            ("token", "alice"), {"min_delta": "many"}, "SCOREBOARD_MIN_DELTA", id="min-not-int"
        ),
        pytest.param(
            ("token", "alice"),
            {"min_delta": "9", "max_delta": "3"},
            "SCOREBOARD_MIN_DELTA",
            id="min-above-max",
        ),
        pytest.param(
            ("migrate",),
            {"database_url": "mysql://x"},
            "SCOREBOARD_DATABASE_URL",
            id="migrate-bad-url",
        ),
        pytest.param(("serve",), {"port": "99999"}, "SCOREBOARD_PORT", id="serve-bad-port"),
        pytest.param(
            ("serve",), {"log_format": "xml"}, "SCOREBOARD_LOG_FORMAT", id="serve-bad-log-format"
        ),
    ],
)
def test_a_bad_config_value_is_one_line_naming_it(
    tmp_path: Path, command: tuple[str, ...], env: dict[str, str], variable: str
) -> None:
    line = assert_one_line_error(run(tmp_path, *command, **env))
    assert variable in line
    assert "tiny-s3cret" not in line  # a secret is never echoed


def test_migrate_on_a_database_it_cannot_write_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    result = run(tmp_path, "migrate", database_url=f"sqlite:///{blocker}/db.sqlite")
    assert_one_line_error(result)


# -- help --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        pytest.param(("--help",), ("serve", "migrate", "token"), id="scoreboard"),
        pytest.param(("serve", "--help"), ("--host", "--port"), id="serve"),
        pytest.param(("migrate", "--help"), ("migrat",), id="migrate"),
        pytest.param(("token", "--help"), ("USER_ID", "--ttl", "--name"), id="token"),
    ],
)
def test_help_for_each_command(
    tmp_path: Path, args: tuple[str, ...], mentions: tuple[str, ...]
) -> None:
    result = run(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: scoreboard")
    for word in mentions:
        assert word in result.stdout
    assert result.stderr == ""


# -- migrate -----------------------------------------------------------------------------------


def test_migrate_creates_the_database_and_is_idempotent(tmp_path: Path) -> None:
    database = tmp_path / "nested" / "folder" / "scoreboard.db"
    url = f"sqlite:///{database}"
    first = run(tmp_path, "migrate", database_url=url)
    assert first.returncode == 0, first.stderr
    assert database.exists()
    with closing(sqlite3.connect(database)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        users = {r[1] for r in conn.execute("PRAGMA table_info(users)")}
        scores = {r[1] for r in conn.execute("PRAGMA table_info(scores)")}
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert {"users", "scores", "standings", "periods", "alembic_version"} <= tables
    assert {"user_id", "username", "created_at", "updated_at"} <= users
    assert {"score_id", "user_id", "metric", "score_delta", "action_id", "created_at"} <= scores

    again = run(tmp_path, "migrate", database_url=url)
    assert again.returncode == 0, again.stderr
    with closing(sqlite3.connect(database)) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (version,)


def test_the_default_database_is_created_under_data(tmp_path: Path) -> None:
    result = run(tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "scoreboard.db").exists()
