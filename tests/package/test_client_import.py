"""``scoreboard.client`` is light: a backend that imports it loads none of the server (its web
framework, database drivers, uvicorn) and not even PyJWT until it mints a token. Checked in a
fresh interpreter, since this one has imported everything already."""

from __future__ import annotations

import subprocess
import sys

from tests.support.timing import scaled

HEAVY = [
    "fastapi",
    "starlette",
    "pydantic",
    "sqlalchemy",
    "alembic",
    "uvicorn",
    "redis",
    "asyncpg",
    "psycopg",
    "limits",
    "jwt",
    "cryptography",
    "scoreboard.web",
    "scoreboard.server",
    "scoreboard.service",
    "scoreboard.settings",
    "scoreboard.auth",
]

PROBE = """
import sys
import scoreboard.client
print(" ".join(sorted(sys.modules)))
scoreboard.client.mint_token("x" * 32, "alice")
print(" ".join(sorted(sys.modules)))
"""


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=True,
    )
    at_import, after_minting = (set(line.split()) for line in done.stdout.splitlines())
    loaded = [m for m in HEAVY if any(n == m or n.startswith(m + ".") for n in at_import)]
    assert loaded == []
    assert "httpx" in at_import
    assert "jwt" in after_minting  # minting is where PyJWT comes in
