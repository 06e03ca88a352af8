"""``scoreboard backup`` and ``scoreboard restore`` as an operator runs them, next to a real
server: a backup taken under load holds every update acknowledged before it began and restores
elsewhere to a consistent board; a restore is refused while the server runs, and allowed once
it is gone, even killed; a user erased after the backup is gone everywhere after restoring it;
scaled mode points to pg_dump. (The file format and the bad files: tests/integration.)"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path

import httpx

from tests.e2e.test_moderation_live import REASON, create_key
from tests.support.ledger import Attempt, Ledger, LedgerClient, read_sqlite
from tests.support.server import ServerProcess
from tests.support.timing import async_wait_until, scaled
from tests.support.update_load import UpdateLoad


def command(server: ServerProcess, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m scoreboard ARGS`` on ``server``'s data and settings, whatever its status."""
    server.data_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "scoreboard", *args],
        env={**server.env(), **env},
        cwd=server.data_dir,
        capture_output=True,
        text=True,
        timeout=scaled(120),
        check=False,
    )


def events_by_user(database: Path) -> dict[str, int]:
    with closing(sqlite3.connect(database)) as conn:
        return dict(conn.execute("SELECT user_id, SUM(score_delta) FROM scores GROUP BY user_id"))


async def test_a_backup_under_load_restores_elsewhere_with_every_acknowledged_update(
    tmp_path: Path,
) -> None:
    live = ServerProcess(tmp_path / "live").start()
    ledger = Ledger()
    client = LedgerClient(ledger, [live.base_url])
    load = UpdateLoad(client, workers=6, users=25)
    file = tmp_path / "backup.tar"
    try:
        load.start()

        async def warmed_up() -> bool:
            return ledger.count("ok") >= 300

        await async_wait_until(warmed_up, 60, "300 acknowledged updates")
        acknowledged: list[Attempt] = [a for a in ledger.attempts if a.outcome == "ok"]
        done = await asyncio.to_thread(command, live, "backup", str(file))
        during = ledger.count("ok") - len(acknowledged)

        async def more() -> bool:
            return ledger.count("ok") >= len(acknowledged) + during + 100

        await async_wait_until(more, 60, "updates after the backup")
        await load.stop()
    finally:
        await client.close()
        live.stop()
    assert done.returncode == 0, done.stderr
    assert f"to {file}" in done.stdout
    assert load.statuses[200] > 0
    assert set(load.statuses) == {200}, load.statuses  # nobody was refused for the backup

    restored = ServerProcess(tmp_path / "restored")
    done = command(restored, "restore", str(file))
    assert done.returncode == 0, done.stderr

    contents = read_sqlite(restored.database)
    missing = [a for a in acknowledged if contents.events.get((a.user_id, a.action_id)) != 1]
    assert missing == []  # every update acknowledged before the backup began, once
    assert max(contents.events.values()) == 1
    sent = {(a.user_id, a.action_id): a.delta for a in ledger.attempts}
    assert all(sent.get(key) == delta for key, delta in contents.deltas.items())  # no phantom
    assert len(contents.deltas) < len(ledger.attempts)  # and not what came after it
    # The board is whole: every standing is the sum of its user's events, and `verify`
    # (every board and period recomputed from the events) agrees.
    assert contents.totals == events_by_user(restored.database)
    verified = command(restored, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("consistent: ")

    restored.start()
    try:
        async with httpx.AsyncClient(base_url=restored.base_url) as http:
            top = (await http.get("/api/scores/top10")).json()["scores"]
        expected = Counter(contents.totals).most_common(10)
        assert [e["score"] for e in top] == [score for _, score in expected]
        assert {e["user_id"]: e["score"] for e in top} == {
            u: contents.totals[u] for u in (e["user_id"] for e in top)
        }
    finally:
        restored.stop()


async def test_restore_is_refused_while_the_server_runs_and_allowed_once_it_is_killed(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "live").start()
    file = tmp_path / "backup.tar"
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            poster = LedgerClient(Ledger(), [server.base_url])
            await poster.post("alice", 10, "a1")
            server.run("backup", str(file))
            await poster.post("bob", 20, "b1")  # after the backup
            await poster.close()
            before = read_sqlite(server.database)
            refused = command(server, "restore", str(file))
            assert refused.returncode == 2
            assert "Traceback" not in refused.stderr
            assert "open in another process" in refused.stderr
            assert "nothing was changed" in refused.stderr
            assert read_sqlite(server.database) == before
            assert (await http.get("/api/scores/top10")).json()["scores"][0]["user_id"] == "bob"
    finally:
        server.kill()  # SIGKILL: no clean shutdown, and no lock left behind
    done = command(server, "restore", str(file))
    assert done.returncode == 0, done.stderr
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            scores = (await http.get("/api/scores/top10")).json()["scores"]
        assert [(e["user_id"], e["score"]) for e in scores] == [("alice", 10)]
    finally:
        server.stop()


async def test_a_user_erased_after_the_backup_is_gone_everywhere_after_restoring_it(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "live").start()
    file = tmp_path / "backup.tar"
    key = create_key(server)
    headers = {"authorization": f"Bearer {key}"}
    try:
        poster = LedgerClient(Ledger(), [server.base_url])
        await poster.post("zed", 70, "z1")
        await poster.post("amy", 30, "a1")
        await poster.close()
        async with httpx.AsyncClient(
            base_url=server.base_url + "/api/admin", headers=headers
        ) as admin:
            assert (await admin.post("/users/zed/hide", json=REASON)).status_code == 200
            server.run("backup", str(file))  # zed, hidden, and an audit row naming him
            erased = await admin.request("DELETE", "/users/zed", json=REASON)
            assert erased.status_code == 200
            hashed = erased.json()["audit_target"]
    finally:
        server.stop()
    done = command(server, "restore", str(file))
    assert done.returncode == 0, done.stderr
    assert "1 user(s) in it erased again" in done.stdout

    with closing(sqlite3.connect(server.database)) as conn:
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608
                assert "zed" not in " ".join(map(str, row)), (table, row)
    server.start()
    try:
        async with httpx.AsyncClient(
            base_url=server.base_url + "/api/admin", headers=headers
        ) as admin:
            assert (await admin.get("/users/zed")).status_code == 404
            entries = (await admin.get("/audit")).json()["entries"]
        assert [(e["action"], e["target"]) for e in entries] == [
            ("restore", "backup"),
            ("erase", hashed),
            ("hide", hashed),  # the backup's row, its id replaced by the same hash
        ]
    finally:
        server.stop()


def test_scaled_mode_explains_pg_dump_and_does_nothing(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "scaled")
    env = {
        "SCOREBOARD_DATABASE_URL": "postgresql://app:s3cret@127.0.0.1:5432/board",
        "SCOREBOARD_REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    for action in ("backup", "restore"):
        done = command(server, action, "board.dump", **env)
        assert done.returncode == 2
        assert done.stdout == ""
        assert "Traceback" not in done.stderr
        assert "pg_dump --format=custom --file=board.dump" in done.stderr
        assert "pg_restore --clean --if-exists" in done.stderr
        assert "Redis holds only derived state" in done.stderr
        assert "s3cret" not in done.stderr
    assert sorted(p.name for p in server.data_dir.iterdir()) == []
