"""The audit line of a real server, in both log formats, when the rejected ``user_id`` is an
attack on the log itself: a newline followed by a forged audit line blaming another user, a NUL,
15 KB, a lone surrogate (which JSON bodies may carry). Each must give exactly one audit line,
with the request's id, bounded in length, and no line the client wrote."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.logfmt import fields, unquote
from tests.support.server import ServerProcess
from tests.support.timing import async_wait_until, scaled
from tests.support.tokens import token

FORGED_TIME = "2026-11-30 20:00:00,000"
ATTACKS = {
    "forged-line": (
        f"x\n{FORGED_TIME} WARNING scoreboard.audit: update rejected "
        "reason=wrong_user user_id=victim client=10.0.0.9"
    ),
    "nul": "mallory\x00victim",
    "15kb": "A" * 15_000,
    "lone-surrogate": "a\ud800b",
}
LONGEST_LINE = 1024


def _server(folder: Path, log_format: str) -> Iterator[ServerProcess]:
    proc = ServerProcess(folder, env={"SCOREBOARD_LOG_FORMAT": log_format}).start()
    yield proc
    proc.stop()


@pytest.fixture
def text_server(tmp_path: Path) -> Iterator[ServerProcess]:
    yield from _server(tmp_path, "text")


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[ServerProcess]:
    yield from _server(tmp_path, "json")


async def _post(http: httpx.AsyncClient, name: str, user_id: str) -> None:
    body = {"user_id": user_id, "score_delta": 1, "auth_token": token("mallory")}
    response = await http.post(
        "/api/scores/update",
        content=json.dumps(body).encode(),  # ASCII: "\ud800" travels as JSON allows
        headers={"content-type": "application/json", "x-request-id": f"audit-{name}"},
    )
    assert response.status_code == 400, response.text


async def _send_attacks(server: ServerProcess) -> list[str]:
    """Posts each attack as ``user_id`` (each is a 400); returns the lines of the log, once
    every request's audit line is in it."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=scaled(10)) as http:
        for name, user_id in ATTACKS.items():
            await _post(http, name, user_id)

    async def all_logged() -> bool:
        log = server.log()
        return all(f"audit-{name}" in log for name in ATTACKS)

    await async_wait_until(all_logged, 10, "an audit line for every attack")
    raw = server.log_path.read_bytes()
    assert b"\x00" not in raw
    return raw.decode("utf-8").splitlines()  # strict, and splits at U+2028 and NEL too


async def test_text_audit_lines_cannot_be_forged(text_server: ServerProcess) -> None:
    lines = await _send_attacks(text_server)
    assert not [line for line in lines if line.startswith(FORGED_TIME)]
    audit = [line for line in lines if "scoreboard.audit" in line]
    assert len(audit) == len(ATTACKS)
    written = {}
    for line in audit:
        assert len(line) < LONGEST_LINE
        values = fields(line, "update rejected")
        assert list(values) == ["reason", "user_id", "client", "request_id"]
        assert (values["reason"], values["client"]) == ("invalid_user_id", "127.0.0.1")
        written[values["request_id"]] = unquote(values["user_id"])
    assert written["audit-forged-line"] == ATTACKS["forged-line"]
    assert written["audit-nul"] == ATTACKS["nul"]
    assert written["audit-15kb"] == "A" * 256 + f"...[+{15_000 - 256} chars]"
    assert written["audit-lone-surrogate"] == ATTACKS["lone-surrogate"]
    assert not [line for line in lines if "Logging error" in line]


async def test_json_audit_lines_are_bounded_and_none_is_lost(json_server: ServerProcess) -> None:
    lines = await _send_attacks(json_server)
    entries: list[dict[str, Any]] = [json.loads(line) for line in lines if line.strip()]
    audit = {e["request_id"]: e for e in entries if e["logger"] == "scoreboard.audit"}
    assert set(audit) == {f"audit-{name}" for name in ATTACKS}
    for line in lines:
        assert len(line) < LONGEST_LINE
    assert audit["audit-forged-line"]["user_id"] == ATTACKS["forged-line"]
    assert audit["audit-nul"]["user_id"] == ATTACKS["nul"]
    assert audit["audit-15kb"]["user_id"].startswith("A" * 256 + "...[+")
    assert audit["audit-lone-surrogate"]["user_id"] == "a\\ud800b"
