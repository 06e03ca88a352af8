"""Migration 0007 (checkpoints for reading the past) upgrades the previous release's database
in place (house style, rule 18), on SQLite and on PostgreSQL.

The previous release (``tests.support.releases.BEFORE_CHECKPOINTS``: schema head 0006, every
read of the past recounted) is run as it was released, with four boards (an all-time sum, a
daily board, a best-of board and a best lap, ascending). Players post to it over HTTP in
rounds; the instant after each round is noted, and everything a client can read of the past at
those instants (top 10, a page, each user, a trajectory) is "before".

This checkout's ``serve`` then upgrades a copy in place, takes a checkpoint of every board
(``SCOREBOARD_CHECKPOINT_INTERVAL`` of a second), takes more posts, and answers every read of
the past exactly as the previous release did: at the instants before the checkpoint (a
recount), at the instant of the last round (the checkpoint's, replayed) and, for the instant
after the new posts, as the boards stand now. The downgrade to 0006 drops the checkpoint tables
and the index (they are derived: nothing is lost), gives back the previous release's schema
exactly, and the previous release serves the same answers again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.support import migrations, releases
from tests.support.server import ServerProcess
from tests.support.timing import scaled
from tests.support.tokens import token

PREVIOUS = releases.BEFORE_CHECKPOINTS
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
BOARDS = """\
[metrics.points]
min_delta = -100
max_delta = 1000

[metrics.lap_ms]
min_delta = 1
max_delta = 3600000

[boards.main]
title = "All time"

[boards.today]
title = "Today"
reset = "daily"
timezone = "Europe/Berlin"

[boards.best]
title = "Best single"
aggregate = "best"

[boards.fastest-lap]
title = "Fastest lap"
metric = "lap_ms"
aggregate = "best"
order = "asc"
"""
BOARD_IDS = ["main", "today", "best", "fastest-lap"]
PLAYERS = [f"p{i:02d}" for i in range(12)]
ROUNDS = 4
Answer = tuple[int, Any]


def stamp(moment: datetime) -> str:
    return quote(moment.astimezone(UTC).isoformat(timespec="microseconds"))


async def post_round(base_url: str, round_: int) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=scaled(30)) as client:
        for i, user in enumerate(PLAYERS):
            bodies = [(10 * ((i * 7 + round_ * 3) % 11) - 25, "points")]
            if (i + round_) % 3 == 0:
                bodies.append((60_000 + 250 * ((i * 5 + round_) % 40), "lap_ms"))
            for n, (delta, metric) in enumerate(bodies):
                body = {
                    "user_id": user,
                    "score_delta": delta,
                    "auth_token": token(user, name=f"Player {i}"),
                    "metric": metric,
                    "action_id": f"{user}:{round_}:{n}",
                }
                response = await client.post("/api/scores/update", json=body)
                assert response.status_code == 200, response.text


def past_paths(instants: list[datetime]) -> list[str]:
    paths = []
    for at in instants:
        for board in BOARD_IDS:
            base = f"/api/boards/{board}"
            paths += [
                f"{base}/top10?at={stamp(at)}",
                f"{base}/scores?at={stamp(at)}&offset=0&limit=100",
                f"{base}/scores?at={stamp(at)}&offset=2&limit=3",
            ]
            paths += [f"{base}/users/{u}?at={stamp(at)}" for u in PLAYERS[::3]]
    return paths


async def read(base_url: str, paths: list[str]) -> dict[str, Answer]:
    async with httpx.AsyncClient(base_url=base_url, timeout=scaled(30)) as client:
        answers = {}
        for path in paths:
            response = await client.get(path)
            answers[path] = (response.status_code, response.json())
        return answers


@dataclass
class Baseline:
    backend: str
    url: str
    src: Path
    folder: Path
    instants: list[datetime]
    answers: dict[str, Answer]
    schema: dict[str, Any]

    def env(self, url: str) -> dict[str, str]:
        return {
            "SCOREBOARD_DATABASE_URL": url,
            "SCOREBOARD_BOARDS": str(self.folder / "boards.toml"),
        }


@pytest.fixture(scope="module", params=BACKENDS)
def baseline(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Baseline]:
    backend = request.param
    folder = tmp_path_factory.mktemp(f"previous-{backend}")
    (folder / "boards.toml").write_text(BOARDS)
    src = PREVIOUS.extract(folder / "release")
    with migrations.empty_database(backend, folder) as url:
        env = {"SCOREBOARD_DATABASE_URL": url, "SCOREBOARD_BOARDS": str(folder / "boards.toml")}
        with PREVIOUS.serving(src, folder / "old", env) as old:
            assert migrations.revision(url) == PREVIOUS.head_revision
            instants = []
            for round_ in range(ROUNDS):
                asyncio.run(post_round(old.base_url, round_))
                instants.append(datetime.now(UTC))
            answers = asyncio.run(read(old.base_url, past_paths(instants)))
        yield Baseline(backend, url, src, folder, instants, answers, migrations.schema(url))


def checkpoints(url: str) -> set[str]:
    return {row[0] for row in migrations.rows(url, "checkpoints", ["board_id"], "id")}


def test_the_baseline_is_what_the_tests_need(baseline: Baseline) -> None:
    """Every board had users at every instant, and the boards moved between instants."""
    for board in BOARD_IDS:
        tops = [
            baseline.answers[f"/api/boards/{board}/top10?at={stamp(at)}"]
            for at in baseline.instants
        ]
        assert all(status == 200 and body["scores"] for status, body in tops), board
        assert len({str(body["scores"]) for _, body in tops}) > 1, board


def test_upgraded_in_place_reads_the_past_as_before_and_downgrades_back(
    baseline: Baseline, tmp_path: Path
) -> None:
    with migrations.copy_database(baseline.backend, baseline.url, tmp_path) as url:
        env = {**baseline.env(url), "SCOREBOARD_CHECKPOINT_INTERVAL": "1"}
        server = ServerProcess(tmp_path / "new", env).start()
        try:
            assert migrations.revision(url) == migrations.head()
            deadline = time.monotonic() + scaled(20)
            while checkpoints(url) != set(BOARD_IDS):
                assert time.monotonic() < deadline, checkpoints(url)
                time.sleep(0.2)
            asyncio.run(post_round(server.base_url, ROUNDS))  # after the checkpoint
            now = datetime.now(UTC)
            answers = asyncio.run(read(server.base_url, list(baseline.answers)))
            current = asyncio.run(
                read(
                    server.base_url,
                    [f"/api/boards/{b}/top10?at={stamp(now)}" for b in BOARD_IDS]
                    + [f"/api/boards/{b}/top10" for b in BOARD_IDS],
                )
            )
        finally:
            server.stop()
        differing = [p for p in baseline.answers if answers[p] != baseline.answers[p]]
        assert differing == [], "\n".join(
            f"{p}: {baseline.answers[p]} != {answers[p]}" for p in differing[:3]
        )
        for board in BOARD_IDS:
            at_now = current[f"/api/boards/{board}/top10?at={stamp(now)}"][1]
            assert at_now["scores"] == current[f"/api/boards/{board}/top10"][1]["scores"]

        # Down to 0006: the checkpoints go (derived), the rest is the previous release's.
        migrations.downgrade(url, PREVIOUS.head_revision)
        assert migrations.revision(url) == PREVIOUS.head_revision
        assert migrations.schema(url) == baseline.schema
        with PREVIOUS.serving(baseline.src, tmp_path / "old", baseline.env(url)) as old:
            again = asyncio.run(read(old.base_url, list(baseline.answers)))
        assert again == baseline.answers
