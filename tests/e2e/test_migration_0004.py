"""Migration 0004 (many boards) upgrades the previous release's database in place (house style,
rule 18), on SQLite and on PostgreSQL.

The previous release (``tests.support.releases.BEFORE_BOARDS``: commit 57ac4ca, head 0003) is
run as it was released: its ``serve`` migrates an empty database to 0003, and a few hundred
players post to it over HTTP (names, renames, ties, totals of 0 and below, action ids or none).
Its rows are then moved in time, as if those posts had come over six days (each round of posts
becomes a day, in order; one timestamp shared by several events stays shared), and the
previous release, restarted on them, is asked everything a client can read: the top 10, every
page, every user, around and history (events, hours and days, time windows, every cursor page),
the live channel's snapshot. Those answers are "before".

Each test then works on a copy of that database: ``python -m scoreboard migrate`` (this
checkout), this checkout's ``serve``, the same questions, and the same updates posted to both
releases. What may differ, and why:

- the update answer gained ``boards`` (the user's place on every board the update fed:
  ``{"main": {"period": "all", "score": new_score, "rank": rank}}`` here); its three old fields
  are unchanged;
- the ``action_conflict`` error (409) says "a different score_delta or metric" instead of "a
  different score_delta": an action id is now unique across metrics; the code is the same;
- nothing else a client reads. ``/api/users/{id}``'s ``updated_at`` now comes from the user's
  standing on ``main``, which the migration copies from ``users.updated_at``: the same value
  (and after an update the event's time, as before). The live channel's ``seq`` counts board
  changes in the serving process's life and neither release stores it, so it is not compared;
  the rankings are.

The new reads of board ``main`` in period ``all`` (``/api/boards/main/...``) must agree with
the seed's, and ``/api/boards/main/periods`` list ``all`` with every user and the leader. The
downgrade (to 0003) must give back the previous release's schema and rows, and keep what was
posted after the upgrade, so that the previous release can be run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
import websockets

from tests.support import migrations, releases
from tests.support.server import ServerProcess
from tests.support.timing import scaled
from tests.support.tokens import token

PREVIOUS = releases.BEFORE_BOARDS

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

# Both releases run with these: negative deltas, so that totals of 0 and below are on the board.
SETTINGS = {"SCOREBOARD_MIN_DELTA": "-100", "SCOREBOARD_MAX_DELTA": "1000"}

PLAYERS = 300
ROUNDS = 6
DAY0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=10)
"""The first round's day: round ``r`` is moved to ``DAY0 + r days``, 02:00 to 22:00 UTC (all
before the updates the tests post today)."""
TIE = 150
"""tie-c, tie-a and tie-b reach it in rounds 0, 2 and 4, in that order."""

Answer = tuple[int, Any]
"""A status and a JSON body."""


# -- what the players post ---------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    user_id: str
    delta: int
    action_id: str | None
    name: str | None


def plan() -> list[list[Post]]:
    """Each round's posts. Deltas are multiples of 5, so many totals tie; one in seven events
    has no action id; every fifth player has no name (the user id shows), every seventeenth is
    renamed in its last round."""
    rng = random.Random(18)
    rounds: list[list[Post]] = [[] for _ in range(ROUNDS)]
    for i in range(PLAYERS):
        user = f"p{i:03d}"
        name = None if i % 5 == 0 else f"Player {i}"
        active = sorted(rng.sample(range(ROUNDS), rng.randint(1, 4)))
        n = 0
        for r in active:
            if i % 17 == 0 and name is not None and len(active) > 1 and r == active[-1]:
                name = f"{name} (renamed)"
            for _ in range(rng.randint(1, 3)):
                if rng.random() < 0.06:
                    delta = rng.choice([-5, -10, -25])
                else:
                    delta = rng.choice([5, 10, 10, 15, 20, 25, 50, 100])
                action = None if n % 7 == 6 else f"{user}:{r}:{n}"
                rounds[r].append(Post(user, delta, action, name))
                n += 1
    special = [
        (0, Post("tie-c", 100, "tie-c:1", "Tie C")),
        (0, Post("tie-c", 50, "tie-c:2", "Tie C")),
        (2, Post("tie-a", 150, "tie-a:1", "Tie A")),
        (4, Post("tie-b", 75, "tie-b:1", "Tie B")),
        (4, Post("tie-b", 75, "tie-b:2", "Tie B")),
        (1, Post("zero", 10, "zero:1", "Zero")),
        (3, Post("zero", -10, "zero:2", "Zero")),
        (2, Post("minus", -25, "minus:1", None)),
        (5, Post("minus", -25, "minus:2", None)),
    ]
    for r, post in special:
        rounds[r].append(post)
    return rounds


SPECIAL_USERS = ["tie-a", "tie-b", "tie-c", "zero", "minus"]


async def post(client: httpx.AsyncClient, p: Post) -> httpx.Response:
    claims = {} if p.name is None else {"name": p.name}
    body: dict[str, Any] = {
        "user_id": p.user_id,
        "score_delta": p.delta,
        "auth_token": token(p.user_id, **claims),
    }
    if p.action_id is not None:
        body["action_id"] = p.action_id
    return await client.post("/api/scores/update", json=body)


async def post_round(base_url: str, posts: list[Post], seed: int) -> None:
    """Each player's posts in order, players at once (so SQLite commits several per batch)."""
    by_user: dict[str, list[Post]] = {}
    for p in posts:
        by_user.setdefault(p.user_id, []).append(p)
    order = sorted(by_user)
    random.Random(seed).shuffle(order)
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=base_url, timeout=scaled(30)) as client:

        async def player(user: str) -> None:
            async with gate:
                for p in by_user[user]:
                    response = await post(client, p)
                    assert response.status_code == 200, response.text

        await asyncio.gather(*(player(u) for u in order))


# -- moving the rows in time -------------------------------------------------------------------


def spread_over_days(url: str, last_ids: list[int]) -> None:
    """Move round ``r``'s events (ids up to ``last_ids[r]``) to day ``r`` linearly (order and
    shared timestamps kept), and each user's ``created_at`` / ``updated_at`` to the time of
    their first / last event, as the previous release would have written them then."""
    db = migrations.engine(url)
    sqlite = db.dialect.name == "sqlite"

    def parse(value: Any) -> datetime:
        return datetime.fromisoformat(value).replace(tzinfo=UTC) if sqlite else value

    def stored(moment: datetime) -> Any:
        return moment.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else moment

    try:
        with db.begin() as conn:
            events = conn.execute(sa.text("SELECT score_id, created_at FROM scores")).all()
            moved = []
            first = 0
            for r, last in enumerate(last_ids):
                times = {sid: parse(at) for sid, at in events if first < sid <= last}
                first = last
                low, high = min(times.values()), max(times.values())
                scale = timedelta(hours=20) / max(high - low, timedelta(milliseconds=1))
                start = DAY0 + timedelta(days=r, hours=2)
                moved += [
                    {"id": sid, "at": stored(start + (at - low) * scale)}
                    for sid, at in times.items()
                ]
            assert len(moved) == len(events)
            conn.execute(sa.text("UPDATE scores SET created_at = :at WHERE score_id = :id"), moved)
            conn.execute(
                sa.text(
                    "UPDATE users SET"
                    " created_at = (SELECT MIN(created_at) FROM scores s"
                    " WHERE s.user_id = users.user_id),"
                    " updated_at = (SELECT MAX(created_at) FROM scores s"
                    " WHERE s.user_id = users.user_id)"
                )
            )
    finally:
        db.dispose()


def last_event_id(url: str) -> int:
    db = migrations.engine(url)
    try:
        with db.connect() as conn:
            return int(conn.execute(sa.text("SELECT MAX(score_id) FROM scores")).scalar() or 0)
    finally:
        db.dispose()


# -- what a client reads -----------------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Reader:
    """GETs paths of one server, a few at once."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, timeout=scaled(30))
        self.gate = asyncio.Semaphore(8)

    async def get(self, path: str) -> Answer:
        async with self.gate:
            response = await self.client.get(path)
        return response.status_code, response.json()

    async def many(self, paths: list[str]) -> dict[str, Answer]:
        answers = await asyncio.gather(*(self.get(p) for p in paths))
        return dict(zip(paths, answers, strict=True))

    async def pages(self, first: str) -> dict[str, Answer]:
        """``first`` and every page after it, following ``next_cursor``."""
        found: dict[str, Answer] = {}
        path: str | None = first
        while path is not None:
            found[path] = answer = await self.get(path)
            cursor = answer[1].get("next_cursor") if answer[0] == 200 else None
            path = None if cursor is None else f"{first}&cursor={cursor}"
        return found

    async def close(self) -> None:
        await self.client.aclose()


async def read(base_url: str, paths: list[str]) -> dict[str, Answer]:
    reader = Reader(base_url)
    try:
        return await reader.many(paths)
    finally:
        await reader.close()


def sample_of(users: list[str], top: list[str]) -> list[str]:
    """The users whose around and history are read: the special ones, the renamed, the first
    three and last, and every tenth."""
    renamed = [f"p{i:03d}" for i in range(0, PLAYERS, 17)]
    chosen = SPECIAL_USERS + renamed + top[:3] + top[-1:] + users[::10]
    return sorted(set(chosen) & set(users))


async def record(base_url: str) -> tuple[dict[str, Answer], list[str]]:
    """Everything a client can read from the previous release, by path, and the users."""
    reader = Reader(base_url)
    try:
        first = await reader.get("/api/scores?offset=0&limit=100")
        total = first[1]["total"]
        page_paths = [f"/api/scores?offset={o}&limit=100" for o in range(0, total + 1, 100)]
        pages = await reader.many(page_paths)
        ranked = [e["user_id"] for p in page_paths for e in pages[p][1]["scores"]]
        users = sorted(ranked)
        paths = [
            "/api/scores/top10",
            "/api/scores",
            "/api/scores?offset=7&limit=13",
            f"/api/scores?offset={total - 3}&limit=10",
            f"/api/scores?offset={total + 5}&limit=10",
            "/api/scores?limit=0",
            "/api/users/nobody",
            "/api/users/nobody/around",
            "/api/users/nobody/history",
            *(f"/api/users/{u}" for u in users),
        ]
        since, until = DAY0 + timedelta(days=1), DAY0 + timedelta(days=4)
        window = f"since={quote(iso(since))}&until={quote(iso(until))}"
        for u in sample_of(users, ranked):
            paths += [
                f"/api/users/{u}/around",
                f"/api/users/{u}/around?radius=1",
                f"/api/users/{u}/around?radius=50",
                f"/api/users/{u}/history",
                f"/api/users/{u}/history?bucket=hour",
                f"/api/users/{u}/history?bucket=day",
                f"/api/users/{u}/history?{window}",
                f"/api/users/{u}/history?{window}&bucket=hour",
            ]
        answers = {**pages, **await reader.many(paths)}
        for u in sample_of(users, ranked):
            answers |= await reader.pages(f"/api/users/{u}/history?limit=2")
            answers |= await reader.pages(f"/api/users/{u}/history?bucket=hour&limit=2")
        return answers, users
    finally:
        await reader.close()


async def snapshot(ws_url: str) -> dict[str, Any]:
    async with websockets.connect(ws_url, open_timeout=scaled(5)) as ws:
        async with asyncio.timeout(scaled(5)):
            message: dict[str, Any] = json.loads(await ws.recv())
    assert message["type"] == "SNAPSHOT"
    return message


# -- databases ---------------------------------------------------------------------------------


@dataclass
class Baseline:
    """A database at 0003 with the previous release's rows, and its answers."""

    backend: str
    url: str
    src: Path
    answers: dict[str, Answer]
    users: list[str]
    rankings: list[dict[str, Any]]
    schema: dict[str, Any]
    rows: dict[str, list[tuple[Any, ...]]]

    def score(self, user: str) -> int:
        return int(self.answers[f"/api/users/{user}"][1]["score"])

    def rank(self, user: str) -> int:
        return int(self.answers[f"/api/users/{user}"][1]["rank"])


USERS_COLUMNS = [
    "user_id",
    "username",
    "score",
    "version",
    "reached_seq",
    "created_at",
    "updated_at",
]
SCORES_COLUMNS = ["score_id", "user_id", "score_delta", "action_id", "created_at", "score_after"]


def table_rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "users": migrations.rows(url, "users", USERS_COLUMNS, "user_id"),
        "scores": migrations.rows(url, "scores", SCORES_COLUMNS, "score_id"),
    }


def copy_of(baseline: Baseline, folder: Path) -> contextlib.AbstractContextManager[str]:
    """A copy of the baseline database for one test (the baseline stays at 0003)."""
    return migrations.copy_database(baseline.backend, baseline.url, folder)


def previous_server(baseline: Baseline, folder: Path, url: str) -> ServerProcess:
    return PREVIOUS.server(baseline.src, folder, {"SCOREBOARD_DATABASE_URL": url, **SETTINGS})


def this_server(folder: Path, url: str) -> ServerProcess:
    return ServerProcess(folder, {"SCOREBOARD_DATABASE_URL": url, **SETTINGS})


def scoreboard_migrate(url: str, cwd: Path) -> None:
    """``python -m scoreboard migrate`` of this checkout: 0004, or a later head built on it."""
    migrations.scoreboard_migrate(url, cwd)


@pytest.fixture(scope="module", params=BACKENDS)
def baseline(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Baseline]:
    backend = request.param
    folder = tmp_path_factory.mktemp(f"previous-{backend}")
    src = PREVIOUS.extract(folder / "release")
    with migrations.empty_database(backend, folder) as url:
        old = PREVIOUS.server(
            src, folder / "build", {"SCOREBOARD_DATABASE_URL": url, **SETTINGS}
        ).start()
        try:
            # It is the previous release: one board, no /api/boards; its head is 0003.
            assert httpx.get(old.base_url + "/api/boards").status_code == 404
            assert migrations.revision(url) == PREVIOUS.head_revision
            last_ids = []
            for r, posts in enumerate(plan()):
                asyncio.run(post_round(old.base_url, posts, seed=r))
                last_ids.append(last_event_id(url))
        finally:
            old.stop()
        spread_over_days(url, last_ids)
        old = PREVIOUS.server(
            src, folder / "read", {"SCOREBOARD_DATABASE_URL": url, **SETTINGS}
        ).start()
        try:
            answers, users = asyncio.run(record(old.base_url))
            rankings = asyncio.run(snapshot(old.ws_url))["data"]["rankings"]
        finally:
            old.stop()
        yield Baseline(
            backend,
            url,
            src,
            answers,
            users,
            rankings,
            migrations.schema(url),
            table_rows(url),
        )


def test_the_baseline_is_what_the_tests_need(baseline: Baseline) -> None:
    """The data has what the comparisons are about: many users, ties, history over days."""
    users = baseline.users
    assert len(users) > PLAYERS * 0.95
    scores = [baseline.score(u) for u in users]
    assert len(scores) - len(set(scores)) > 100  # many ties
    assert baseline.score("zero") == 0
    assert baseline.score("minus") == -50
    ties = sorted((baseline.rank(u), u) for u in ("tie-a", "tie-b", "tie-c"))
    assert [u for _, u in ties] == ["tie-c", "tie-a", "tie-b"]  # who reached 150 first
    assert {baseline.score(u) for _, u in ties} == {TIE}
    renamed = baseline.answers["/api/users/p017"][1]["username"]
    assert renamed.endswith("(renamed)")
    events = baseline.rows["scores"]
    assert len(events) > 1000
    days = {str(e[4])[:10] for e in events}
    assert len(days) == ROUNDS
    days_of_one = max(len({str(e[4])[:10] for e in events if e[1] == u}) for u in users)
    assert days_of_one >= 3


# -- the upgrade -------------------------------------------------------------------------------


def board_path(path: str) -> str | None:
    """The ``/api/boards/main/...`` read that answers ``path`` of the seed's API."""
    if path.startswith("/api/scores/top10"):
        return "/api/boards/main/top10"
    if path.startswith("/api/scores"):
        return "/api/boards/main/scores" + path.removeprefix("/api/scores")
    if path.startswith("/api/users/") and "/history" not in path:
        return "/api/boards/main/users/" + path.removeprefix("/api/users/")
    return None


def test_upgrade_keeps_every_answer_of_the_previous_release(
    baseline: Baseline, tmp_path: Path
) -> None:
    with copy_of(baseline, tmp_path) as url:
        scoreboard_migrate(url, tmp_path / "migrate")
        # The shape the new code relies on: the score columns are gone, the boards hold them.
        assert not {"score", "version", "reached_seq"} & set(migrations.columns(url, "users"))
        server = this_server(tmp_path / "new", url).start()
        try:
            paths = list(baseline.answers)
            answers = asyncio.run(read(server.base_url, paths))
            rankings = asyncio.run(snapshot(server.ws_url))["data"]["rankings"]
            board_paths = {p: board_path(p) for p in paths}
            by_board = asyncio.run(
                read(
                    server.base_url,
                    [b for p, b in board_paths.items() if b and baseline.answers[p][0] == 200]
                    + [
                        "/api/boards",
                        "/api/boards/main/periods",
                        "/api/boards/main/top10?period=all",
                        "/api/boards/main/scores?period=all&offset=0&limit=100",
                    ]
                    + [f"{p}&metric=points" for p in paths if "/history?" in p],
                )
            )
        finally:
            server.stop()

    differing = [p for p in paths if answers[p] != baseline.answers[p]]
    assert differing == [], "\n".join(
        f"{p}: {baseline.answers[p]} != {answers[p]}" for p in differing[:3]
    )
    assert rankings == baseline.rankings

    where = {"board": "main", "period": "all"}
    for path, board in board_paths.items():
        status, body = baseline.answers[path]
        if board is not None and status == 200:
            assert by_board[board] == (200, {**where, **body}), path
    for path in paths:
        if "/history?" in path:
            assert by_board[f"{path}&metric=points"] == baseline.answers[path], path
    top = baseline.answers["/api/scores/top10"][1]["scores"]
    assert by_board["/api/boards/main/top10?period=all"] == (200, {**where, "scores": top})
    assert by_board["/api/boards/main/scores?period=all&offset=0&limit=100"] == (
        200,
        {**where, **baseline.answers["/api/scores?offset=0&limit=100"][1]},
    )
    leader = {k: top[0][k] for k in ("user_id", "username", "score")}
    assert by_board["/api/boards/main/periods"] == (
        200,
        {
            "periods": [
                {
                    "id": "all",
                    "starts_at": None,
                    "ends_at": None,
                    "entries": len(baseline.users),
                    "leader": leader,
                }
            ],
            "next": None,
        },
    )
    status, boards = by_board["/api/boards"]
    assert status == 200
    assert [(b["id"], b["metric"], b["reset"], b["period"]) for b in boards["boards"]] == [
        ("main", "points", "never", {"id": "all", "starts_at": None, "ends_at": None})
    ]


# -- updates after the upgrade -----------------------------------------------------------------


def updates_after(baseline: Baseline) -> list[Post]:
    """Updates for the upgraded database: the leader, a player who climbs exactly to the tie
    score (ranked after everyone who reached it before), a retry of an action applied before
    the upgrade and a conflicting reuse of it, a newcomer, the players at 0 and below, a rename,
    and more, some without an action id."""
    scores = {u: baseline.score(u) for u in baseline.users}
    leader = baseline.answers["/api/scores/top10"][1]["scores"][0]["user_id"]
    climber = next(u for u in baseline.users if u.startswith("p") and 0 < TIE - scores[u] <= 1000)
    old_event = next(e for e in baseline.rows["scores"] if e[3].startswith("p001:"))
    _, old_user, old_delta, old_action, _, _ = old_event
    rng = random.Random(4)
    posts = [
        Post(leader, 5, "after:leader", None),
        Post(climber, TIE - scores[climber], "after:climber", None),
        Post(old_user, old_delta, old_action, None),  # a retry: nothing added
        Post(old_user, old_delta + 5, old_action, None),  # another delta: 409
        Post("newcomer", 40, "after:newcomer", "Newcomer"),
        Post("zero", 5, "after:zero", None),
        Post("minus", 10, None, None),
        Post("p017", 10, "after:p017", "Player 17 (again)"),
        Post(leader, 5, None, None),
    ]
    for i, user in enumerate(rng.sample(baseline.users, 15)):
        action = None if i % 4 == 3 else f"after:{i}"
        posts.append(Post(user, rng.choice([-10, 5, 20, 35, 100]), action, None))
    return posts


async def post_each(base_url: str, posts: list[Post]) -> list[Answer]:
    """One after the other (the answers' ranks depend on the order)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=scaled(30)) as client:
        answers = []
        for p in posts:
            response = await post(client, p)
            answers.append((response.status_code, response.json()))
        return answers


def touched_by(posts: list[Post]) -> list[str]:
    return sorted({p.user_id for p in posts})


def reads_after(baseline: Baseline, posts: list[Post]) -> list[str]:
    users = sorted(set(baseline.users) | set(touched_by(posts)))
    paths = [
        "/api/scores/top10",
        *(f"/api/scores?offset={o}&limit=100" for o in range(0, len(users) + 1, 100)),
        *(f"/api/users/{u}" for u in users),
    ]
    for u in touched_by(posts):
        paths += [
            f"/api/users/{u}/around?radius=3",
            f"/api/users/{u}/history?limit=1000",
            f"/api/users/{u}/history?bucket=day",
        ]
    return paths


def test_updates_after_the_upgrade_add_to_the_migrated_totals(
    baseline: Baseline, tmp_path: Path
) -> None:
    """The same updates, posted to the previous release on its database and to this release on
    the upgraded one, get the same answers (plus ``boards``), and leave the same board; history
    goes on from the migrated running totals."""
    posts = updates_after(baseline)
    paths = reads_after(baseline, posts)
    with copy_of(baseline, tmp_path / "previous") as url:
        old = previous_server(baseline, tmp_path / "old", url).start()
        try:
            old_posted = asyncio.run(post_each(old.base_url, posts))
            old_read = asyncio.run(read(old.base_url, paths))
        finally:
            old.stop()
    with copy_of(baseline, tmp_path / "upgraded") as url:
        scoreboard_migrate(url, tmp_path / "migrate")
        new = this_server(tmp_path / "new", url).start()
        try:
            new_posted = asyncio.run(post_each(new.base_url, posts))
            new_read = asyncio.run(read(new.base_url, paths))
            touched = touched_by(posts)
            on_main = asyncio.run(
                read(new.base_url, [f"/api/boards/main/users/{u}" for u in touched])
            )
        finally:
            new.stop()

    # Every answer is the previous release's, plus where the update left the user on main.
    for p, (old_status, old_body), (status, body) in zip(
        posts, old_posted, new_posted, strict=True
    ):
        assert status == old_status, (p, old_body, body)
        if status == 200:
            place = {"period": "all", "score": old_body["new_score"], "rank": old_body["rank"]}
            assert body == {**old_body, "boards": {"main": place}}, p
        else:  # the same error; its message now names the metric too
            assert body["error"] == old_body["error"] == "action_conflict", p
            assert old_body["message"] in body["message"], p
    results = dict(zip(posts, new_posted, strict=True))
    statuses = [status for status, _ in new_posted]
    assert statuses.count(409) == 1
    assert statuses.count(200) == len(posts) - 1

    # Each update added to the migrated total: the old score plus the delta.
    expected = {u: baseline.score(u) for u in baseline.users}
    added: dict[str, int] = {}
    for p in posts:
        status, body = results[p]
        if status != 200 or (p.action_id is not None and p.action_id.startswith(p.user_id)):
            continue  # the conflict, and the retry (it adds nothing)
        expected[p.user_id] = expected.get(p.user_id, 0) + p.delta
        added[p.user_id] = added.get(p.user_id, 0) + 1
        assert body["new_score"] == expected[p.user_id], p
    retry = posts[2]
    assert results[retry] == (
        200,
        {**results[retry][1], "new_score": baseline.score(retry.user_id)},
    )

    # The climber reached the tie score last: ranked right after everyone already at it.
    climber = posts[1].user_id
    at_tie = [u for u in baseline.users if baseline.score(u) == TIE]
    assert results[posts[1]][1]["rank"] == max(baseline.rank(u) for u in at_tie) + 1
    assert new_read[f"/api/users/{climber}"][1]["rank"] == results[posts[1]][1]["rank"]

    # Both releases leave the same board: ranks, scores, names, pages.
    for path in paths:
        if "/history" in path:
            continue
        old_status, old_body = old_read[path]
        status, body = new_read[path]
        assert status == old_status == 200, path
        if path.startswith("/api/users/") and path.split("/")[-1] in touched:
            old_body = {**old_body, "updated_at": body["updated_at"]}  # posted at another time
        assert body == old_body, path
    for user in touched:
        user_body = new_read[f"/api/users/{user}"][1]
        assert on_main[f"/api/boards/main/users/{user}"] == (
            200,
            {"board": "main", "period": "all", **user_body},
        )

        # History goes on from the migrated running total, and ends at the new score.
        events = new_read[f"/api/users/{user}/history?limit=1000"][1]["events"]
        old_events = old_read[f"/api/users/{user}/history?limit=1000"][1]["events"]
        before = [e for e in baseline.rows["scores"] if e[1] == user]
        assert len(events) == len(old_events) == len(before) + added.get(user, 0)
        assert events[: len(before)] == old_events[: len(before)]
        running = 0
        for event in events:
            running += event["delta"]
            assert event["score"] == running, (user, event)
        assert running == user_body["score"] == expected[user]
        assert [e["at"] for e in events] == sorted(e["at"] for e in events)
        assert user_body["updated_at"] == events[-1]["at"]
        for event, old_event in zip(events, old_events, strict=True):
            assert (event["delta"], event["score"]) == (old_event["delta"], old_event["score"])
        days = new_read[f"/api/users/{user}/history?bucket=day"][1]["points"]
        assert days[-1]["score"] == user_body["score"]
        old_days = old_read[f"/api/users/{user}/history?bucket=day"][1]["points"]
        assert days[:-1] == old_days[:-1]


# -- the downgrade -----------------------------------------------------------------------------


def test_downgrade_restores_the_previous_schema_rows_and_answers(
    baseline: Baseline, tmp_path: Path
) -> None:
    """Upgrade, serve (which stores the boards configuration), downgrade to 0003: the schema
    and every row are the previous release's again, and it answers as before."""
    with copy_of(baseline, tmp_path) as url:
        scoreboard_migrate(url, tmp_path / "migrate")
        this_server(tmp_path / "new", url).start().stop()
        migrations.downgrade(url, PREVIOUS.head_revision)
        assert migrations.revision(url) == PREVIOUS.head_revision
        assert migrations.schema(url) == baseline.schema
        assert table_rows(url) == baseline.rows
        old = previous_server(baseline, tmp_path / "old", url).start()
        try:
            answers = asyncio.run(read(old.base_url, list(baseline.answers)))
            rankings = asyncio.run(snapshot(old.ws_url))["data"]["rankings"]
        finally:
            old.stop()
    assert answers == baseline.answers
    assert rankings == baseline.rankings


def test_a_downgrade_keeps_the_updates_made_after_the_upgrade(
    baseline: Baseline, tmp_path: Path
) -> None:
    """Updates posted to this release are the previous release's after a downgrade: the same
    scores, ranks, times and history; and it adds to them."""
    posts = updates_after(baseline)
    paths = reads_after(baseline, posts)
    with copy_of(baseline, tmp_path) as url:
        scoreboard_migrate(url, tmp_path / "migrate")
        new = this_server(tmp_path / "new", url).start()
        try:
            asyncio.run(post_each(new.base_url, posts))
            new_read = asyncio.run(read(new.base_url, paths))
        finally:
            new.stop()
        migrations.downgrade(url, PREVIOUS.head_revision)
        old = previous_server(baseline, tmp_path / "old", url).start()
        try:
            old_read = asyncio.run(read(old.base_url, paths))
            leader = new_read["/api/scores/top10"][1]["scores"][0]
            more = Post(leader["user_id"], 7, "after-downgrade", None)
            posted = asyncio.run(post_each(old.base_url, [more]))
        finally:
            old.stop()
    differing = [p for p in paths if old_read[p] != new_read[p]]
    assert differing == [], "\n".join(f"{p}: {new_read[p]} != {old_read[p]}" for p in differing)
    assert posted == [(200, {"user_id": more.user_id, "new_score": leader["score"] + 7, "rank": 1})]
