"""Migration 0005 (moderation) upgrades the previous release's database in place (house style,
rule 18), on SQLite and in scaled mode on PostgreSQL and Redis.

The previous release (``tests.support.releases.BEFORE_MODERATION``: commit 3795253, schema head
0004) is run as it was released, with five boards over two metrics (``BOARDS``: an all-time sum,
a daily and a weekly board, a manual season, a best-of board of lap times). Players post to it
over HTTP; an operator rolls the season over with that release's ``boards rollover`` (so season
1 is an archive, season 2 current); more posts. Its rows and everything a client can read
(every board, period, archive, user, around and history) are "before". The daily and weekly
boards have their current period only: the previous release runs on the real clock, so a day
cannot end on cue; the season's archive is the same kind of rows (the standings of a period
that ended) and is read and moderated like any archive.

Each test then works on a copy of that database (on PostgreSQL, with a copy of the release's
Redis keys under a prefix of its own: the index the previous release left is what an upgraded
process finds) and starts this checkout's ``serve`` on it, which upgrades it in place:

- every row of the previous release is kept, column for column, and the new columns say what
  an upgraded row means: every user ``active`` and not name-locked, every event a user's and
  counting, every standing shown; no admin key, no audit;
- every public answer is the previous release's;
- moderation works on the upgraded rows: an admin key from the CLI, hide, ban, void and
  restore, erase through ``/api/admin``, public reads (current periods and the archive) reflect
  each action and are the previous answers again once it is lifted, and the audit has them;
- the downgrade to 0004 refuses while moderation is in force (a hidden or banned user, a
  voided event, a locked name): 0004 could not keep it and would show and count them again.
  Once lifted, it gives back the previous release's schema and rows, drops the audit and the
  admin keys, and the previous release serves the same answers as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

from tests.support import migrations, releases, services
from tests.support.server import ServerProcess
from tests.support.timing import scaled
from tests.support.tokens import token

PREVIOUS = releases.BEFORE_MODERATION
MODERATION = "0005"
"""The revision this file tests: later ones step down to it first."""

BACKENDS = ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis])]

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
keep = 31

[boards.weekly]
title = "This week"
reset = "weekly"
timezone = "Europe/Berlin"

[boards.season]
title = "Season"
reset = "manual"

[boards.fastest-lap]
title = "Fastest lap"
metric = "lap_ms"
aggregate = "best"
order = "asc"
"""
BOARD_IDS = ["main", "today", "weekly", "season", "fastest-lap"]

PLAYERS = 40
REASON = {"reason": "migration test"}
# The tables of 0004, each with its key (the order rows are compared in).
TABLES = {
    "users": "user_id",
    "scores": "score_id",
    "totals": "user_id, metric",
    "standings": "board_id, period_id, user_id",
    "periods": "board_id, period_id",
    "board_config": "id",
}

Answer = tuple[int, Any]


# -- what the players post ---------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    user_id: str
    delta: int
    metric: str = "points"
    action_id: str | None = None
    name: str | None = None


def plan(round_: int) -> list[Post]:
    """One round of posts: every player some points (ties, totals of 0 and below, some without
    an action id or a name), one in three some laps."""
    rng = random.Random(5 + round_)
    posts = []
    for i in range(PLAYERS):
        user = f"u{i:02d}"
        name = (
            None if i % 6 == 0 else f"Player {i}" + (" (renamed)" if round_ and i % 9 == 1 else "")
        )
        for n in range(rng.randint(1, 3)):
            delta = rng.choice([-5, 5, 10, 10, 20, 25, 50])
            action = None if n == 2 else f"{user}:{round_}:{n}"
            posts.append(Post(user, delta, "points", action, name))
        if i % 3 == 0:
            for n in range(rng.randint(1, 2)):
                lap = rng.randrange(60_000, 90_000, 250)
                posts.append(Post(user, lap, "lap_ms", f"{user}:{round_}:lap{n}", name))
    if round_ == 0:
        posts += [Post("zero", 10, name="Zero"), Post("zero", -10, name="Zero")]
    return posts


async def post(client: httpx.AsyncClient, p: Post) -> httpx.Response:
    claims = {} if p.name is None else {"name": p.name}
    body: dict[str, Any] = {
        "user_id": p.user_id,
        "score_delta": p.delta,
        "auth_token": token(p.user_id, **claims),
        "metric": p.metric,
    }
    if p.action_id is not None:
        body["action_id"] = p.action_id
    return await client.post("/api/scores/update", json=body)


async def post_all(base_url: str, posts: list[Post]) -> None:
    """Each player's posts in order, players at once."""
    by_user: dict[str, list[Post]] = {}
    for p in posts:
        by_user.setdefault(p.user_id, []).append(p)
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=base_url, timeout=scaled(30)) as client:

        async def player(user: str) -> None:
            async with gate:
                for p in by_user[user]:
                    response = await post(client, p)
                    assert response.status_code == 200, response.text

        await asyncio.gather(*(player(u) for u in sorted(by_user)))


# -- what a client reads -----------------------------------------------------------------------


async def read(base_url: str, paths: list[str]) -> dict[str, Answer]:
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=base_url, timeout=scaled(30)) as client:

        async def get(path: str) -> Answer:
            async with gate:
                response = await client.get(path)
            return response.status_code, response.json()

        answers = await asyncio.gather(*(get(p) for p in paths))
    return dict(zip(paths, answers, strict=True))


def board_periods(answers: dict[str, Answer]) -> dict[str, list[str]]:
    return {
        b: [p["id"] for p in answers[f"/api/boards/{b}/periods"][1]["periods"]] for b in BOARD_IDS
    }


def public_paths(users: list[str], periods: dict[str, list[str]]) -> list[str]:
    """Everything a client can read of these users and boards."""
    paths = ["/api/boards", "/api/scores/top10", "/api/scores?offset=0&limit=100"]
    for board, ids in periods.items():
        paths += [f"/api/boards/{board}", f"/api/boards/{board}/periods"]
        for period in ids:
            paths += [
                f"/api/boards/{board}/top10?period={period}",
                f"/api/boards/{board}/scores?period={period}&offset=0&limit=100",
                f"/api/boards/{board}/scores?period={period}&offset=3&limit=7",
            ]
            paths += [f"/api/boards/{board}/users/{u}?period={period}" for u in users]
    for u in users:
        paths += [
            f"/api/users/{u}",
            f"/api/users/{u}/around?radius=2",
            f"/api/boards/fastest-lap/users/{u}/around?radius=1",
            f"/api/boards/season/users/{u}/around?period=1&radius=1",
            f"/api/users/{u}/history?limit=100",
            f"/api/users/{u}/history?metric=lap_ms&limit=100",
            f"/api/users/{u}/history?bucket=hour",
        ]
    return paths


def users_of(answers: dict[str, Answer]) -> list[str]:
    return sorted(e["user_id"] for e in answers["/api/scores?offset=0&limit=100"][1]["scores"])


# -- databases ---------------------------------------------------------------------------------


def table_rows(url: str, columns: dict[str, list[str]]) -> dict[str, list[tuple[Any, ...]]]:
    return {t: migrations.rows(url, t, columns[t], TABLES[t]) for t in TABLES}


def count(url: str, query: str) -> int:
    db = migrations.engine(url)
    try:
        with db.connect() as conn:
            return int(conn.execute(sa.text(query)).scalar() or 0)
    finally:
        db.dispose()


@dataclass
class Baseline:
    """A database at 0004 with the previous release's rows, its Redis keys, and its answers."""

    backend: str
    url: str
    src: Path
    folder: Path
    redis_prefix: str | None
    answers: dict[str, Answer]
    users: list[str]
    periods: dict[str, list[str]]
    schema: dict[str, Any]
    columns: dict[str, list[str]]
    rows: dict[str, list[tuple[Any, ...]]]

    def env(self, url: str, prefix: str | None) -> dict[str, str]:
        return settings(self.folder, url, prefix)

    def first_event(self, user: str, metric: str) -> tuple[Any, ...]:
        """The row of the user's first event of ``metric`` (in season 1)."""
        at = self.columns["scores"].index("metric")
        return next(e for e in self.rows["scores"] if e[1] == user and e[at] == metric)


def settings(folder: Path, url: str, prefix: str | None) -> dict[str, str]:
    """What both releases run with: the database, the boards file, and in scaled mode Redis."""
    env = {"SCOREBOARD_DATABASE_URL": url, "SCOREBOARD_BOARDS": str(folder / "boards.toml")}
    if prefix is not None:
        env |= {"SCOREBOARD_REDIS_URL": redis_url(), "SCOREBOARD_REDIS_PREFIX": prefix}
    return env


def redis_url() -> str:
    return services.redis_url(services.INTEGRATION_REDIS_DB)


def copy_keys(source: str, target: str) -> None:
    client = redis.Redis.from_url(redis_url())
    try:
        for key in client.scan_iter(match=source + "*", count=1000):
            client.copy(key, target.encode() + key[len(source) :])
    finally:
        client.close()


def delete_keys(prefix: str) -> None:
    asyncio.run(services.delete_keys(redis_url(), prefix))


@dataclass
class Copy:
    url: str
    env: dict[str, str]
    prefix: str | None


@contextlib.contextmanager
def copy_of(baseline: Baseline, folder: Path) -> Iterator[Copy]:
    """A copy of the baseline's database, and of its Redis keys under a prefix of its own."""
    with migrations.copy_database(baseline.backend, baseline.url, folder) as url:
        prefix = None
        if baseline.redis_prefix is not None:
            prefix = services.unique_prefix()
            copy_keys(baseline.redis_prefix, prefix)
        try:
            yield Copy(url, baseline.env(url, prefix), prefix)
        finally:
            if prefix is not None:
                delete_keys(prefix)


@pytest.fixture(scope="module", params=BACKENDS)
def baseline(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Baseline]:
    backend = request.param
    folder = tmp_path_factory.mktemp(f"previous-{backend}")
    (folder / "boards.toml").write_text(BOARDS)
    src = PREVIOUS.extract(folder / "release")
    prefix = services.unique_prefix() if backend == "postgres" else None
    with migrations.empty_database(backend, folder) as url:
        env = settings(folder, url, prefix)
        try:
            with PREVIOUS.serving(src, folder / "old", env) as old:
                # It is the previous release: no admin API; its head is 0004.
                assert httpx.get(old.base_url + "/api/admin/audit").status_code == 404
                assert migrations.revision(url) == PREVIOUS.head_revision
                asyncio.run(post_all(old.base_url, plan(0)))
            # The operator ends season 1 with the release's own command, then play goes on.
            PREVIOUS.server(src, folder / "old", env).run("boards", "rollover", "season")
            with PREVIOUS.serving(src, folder / "old", env) as old:
                asyncio.run(post_all(old.base_url, plan(1)))
                first = asyncio.run(
                    read(
                        old.base_url,
                        ["/api/scores?offset=0&limit=100"]
                        + [f"/api/boards/{b}/periods" for b in BOARD_IDS],
                    )
                )
                users = users_of(first)
                periods = board_periods(first)
                answers = asyncio.run(read(old.base_url, public_paths(users, periods)))
            columns = {t: migrations.columns(url, t) for t in TABLES}
            yield Baseline(
                backend,
                url,
                src,
                folder,
                prefix,
                answers,
                users,
                periods,
                migrations.schema(url),
                columns,
                table_rows(url, columns),
            )
        finally:
            if prefix is not None:
                delete_keys(prefix)


def this_server(copy: Copy, folder: Path) -> ServerProcess:
    return ServerProcess(folder, copy.env)


def test_the_baseline_is_what_the_tests_need(baseline: Baseline) -> None:
    """Many users on every board, a closed season with entries, laps, ties, history."""
    assert len(baseline.users) == PLAYERS + 1
    assert baseline.periods["season"] == ["2", "1"]
    archive = baseline.answers["/api/boards/season/periods"][1]["periods"][1]
    assert archive["ends_at"] is not None
    assert archive["entries"] == PLAYERS + 1
    for board in BOARD_IDS:
        period = baseline.periods[board][0]  # the current one
        entries = baseline.answers[f"/api/boards/{board}/scores?period={period}&offset=0&limit=100"]
        assert entries[0] == 200
        assert entries[1]["total"] > (10 if board == "fastest-lap" else 30)
    scores = [baseline.answers[f"/api/users/{u}"][1]["score"] for u in baseline.users]
    assert len(scores) - len(set(scores)) > 5
    assert min(scores) <= 0
    assert len(baseline.rows["scores"]) > 150
    history = baseline.answers["/api/users/u03/history?limit=100"][1]["events"]
    assert len(history) >= 3
    assert {
        r[baseline.columns["periods"].index("board_id")] for r in baseline.rows["periods"]
    } == set(BOARD_IDS)


# -- the upgrade -------------------------------------------------------------------------------


def test_serve_upgrades_in_place_keeping_every_row_and_answer(
    baseline: Baseline, tmp_path: Path
) -> None:
    with copy_of(baseline, tmp_path) as copy:
        server = this_server(copy, tmp_path / "new").start()
        try:
            assert migrations.revision(copy.url) == migrations.head()
            answers = asyncio.run(read(server.base_url, list(baseline.answers)))
        finally:
            server.stop()
        rows = table_rows(copy.url, baseline.columns)
        defaults = {
            "users": "SELECT COUNT(*) FROM users WHERE status = 'active' AND NOT name_locked",
            "scores": "SELECT COUNT(*) FROM scores WHERE source = 'user' AND voided_at IS NULL",
            "standings": "SELECT COUNT(*) FROM standings WHERE hidden = 0",
        }
        counted = {t: count(copy.url, q) for t, q in defaults.items()}
        admin = [count(copy.url, f"SELECT COUNT(*) FROM {t}") for t in ("admin_keys", "audit")]  # noqa: S608

    differing = [p for p in baseline.answers if answers[p] != baseline.answers[p]]
    assert differing == [], "\n".join(
        f"{p}: {baseline.answers[p]} != {answers[p]}" for p in differing[:3]
    )
    for table in TABLES:
        assert rows[table] == baseline.rows[table], table
    assert counted == {t: len(baseline.rows[t]) for t in defaults}
    assert admin == [0, 0]


# -- moderation on the upgraded data -----------------------------------------------------------


class Admin:
    """``/api/admin`` with one key, and the public reads of the same server."""

    def __init__(self, server: ServerProcess, key: str) -> None:
        self.server = server
        self.client = httpx.Client(
            base_url=server.base_url + "/api/admin",
            headers={"Authorization": f"Bearer {key}"},
            timeout=scaled(30),
        )

    def act(self, path: str, **body: Any) -> dict[str, Any]:
        method = "DELETE" if path.startswith("DELETE ") else "POST"
        response = self.client.request(
            method, path.removeprefix("DELETE "), json={**REASON, **body}
        )
        assert response.status_code == 200, (path, response.text)
        answer: dict[str, Any] = response.json()
        return answer

    def audit(self) -> list[tuple[str, str, str]]:
        response = self.client.get("/audit", params={"limit": 100})
        assert response.status_code == 200, response.text
        return [(e["key"], e["action"], e["target"]) for e in response.json()["entries"]]

    def read(self, paths: list[str]) -> dict[str, Answer]:
        return asyncio.run(read(self.server.base_url, paths))

    def close(self) -> None:
        self.client.close()


@contextlib.contextmanager
def admin_of(server: ServerProcess, name: str = "ops") -> Iterator[Admin]:
    """An admin key made with this checkout's ``scoreboard admin-key create``, in use."""
    made = server.run("admin-key", "create", name)
    admin = Admin(server, made.stdout.strip())
    try:
        yield admin
    finally:
        admin.close()


def without(entries: list[dict[str, Any]], user: str) -> list[dict[str, Any]]:
    """A board's entries with ``user`` gone and the ranks below closed up."""
    first = entries[0]["rank"] if entries else 1
    kept = [e for e in entries if e["user_id"] != user]
    return [{**e, "rank": first + i} for i, e in enumerate(kept)]


def page(board: str, period: str) -> str:
    return f"/api/boards/{board}/scores?period={period}&offset=0&limit=100"


def visible_pages(baseline: Baseline) -> list[str]:
    return [page(b, p) for b in BOARD_IDS for p in baseline.periods[b]] + [
        "/api/scores?offset=0&limit=100"
    ]


def test_moderation_works_on_the_upgraded_data(baseline: Baseline, tmp_path: Path) -> None:
    """Hide, ban, void, restore and erase through /api/admin on rows the previous release
    wrote: public reads (current periods and the season archive) reflect each action, and are
    the previous release's answers again once it is lifted; the audit has every action."""
    main = baseline.answers["/api/scores?offset=0&limit=100"][1]["scores"]
    hidden, banned, erased = main[1]["user_id"], main[5]["user_id"], main[10]["user_id"]
    voided_user = "u03"  # points and laps in both seasons
    points_event = baseline.first_event(voided_user, "points")
    lap_events = [
        e
        for e in baseline.rows["scores"]
        if e[1] == voided_user and e[baseline.columns["scores"].index("metric")] == "lap_ms"
    ]
    best_lap = min(lap_events, key=lambda e: (e[2], e[0]))
    pages = visible_pages(baseline)
    user_paths = [p for p in baseline.answers if p.startswith("/api/users/")]
    with copy_of(baseline, tmp_path) as copy:
        server = this_server(copy, tmp_path / "new").start()
        try:
            with admin_of(server) as admin:
                # Hidden: on no board, archive included; the ranks below close up.
                assert admin.act(f"/users/{hidden}/hide")["changed"] is True
                seen = admin.read([*pages, f"/api/users/{hidden}"])
                for path in pages:
                    before = baseline.answers[path][1]
                    assert seen[path][1]["scores"] == without(before["scores"], hidden), path
                assert seen[f"/api/users/{hidden}"][0] == 404
                admin.act(f"/users/{hidden}/unhide")

                # Banned: hidden, and their updates are refused.
                admin.act(f"/users/{banned}/ban")
                refused = httpx.post(
                    server.base_url + "/api/scores/update",
                    json={"user_id": banned, "score_delta": 5, "auth_token": token(banned)},
                    timeout=scaled(30),
                )
                assert (refused.status_code, refused.json()["error"]) == (403, "banned")
                seen = admin.read(["/api/scores?offset=0&limit=100", page("season", "1")])
                for path, answer in seen.items():
                    assert banned not in {e["user_id"] for e in answer[1]["scores"]}, path
                admin.act(f"/users/{banned}/unban")

                # A void of an event of season 1: out of the total, the archive, history.
                event_id, _, delta = points_event[:3]
                assert admin.act(f"/events/{event_id}/void")["changed"] is True
                admin.act(f"/events/{best_lap[0]}/void")
                paths = [
                    f"/api/users/{voided_user}",
                    f"/api/boards/season/users/{voided_user}?period=1",
                    f"/api/boards/season/users/{voided_user}?period=2",
                    f"/api/boards/fastest-lap/users/{voided_user}?period=all",
                    f"/api/users/{voided_user}/history?limit=100",
                    f"/api/users/{voided_user}/history?metric=lap_ms&limit=100",
                ]
                seen = admin.read(paths)
                old = {p: baseline.answers[p][1] for p in paths}
                assert seen[paths[0]][1]["score"] == old[paths[0]]["score"] - delta
                assert seen[paths[1]][1]["score"] == old[paths[1]]["score"] - delta
                assert seen[paths[2]] == baseline.answers[paths[2]]
                next_best = min(e[2] for e in lap_events if e[0] != best_lap[0])
                assert seen[paths[3]][1]["score"] == next_best
                events = seen[paths[4]][1]["events"]
                assert len(events) == len(old[paths[4]]["events"]) - 1
                assert events[-1]["score"] == old[paths[0]]["score"] - delta
                assert len(seen[paths[5]][1]["events"]) == len(lap_events) - 1
                admin.act(f"/events/{event_id}/restore")
                admin.act(f"/events/{best_lap[0]}/restore")

                # Every action lifted: the previous release's answers, every one of them.
                lifted = admin.read(list(baseline.answers))
                differing = [p for p in baseline.answers if lifted[p] != baseline.answers[p]]
                assert differing == [], "\n".join(
                    f"{p}: {baseline.answers[p]} != {lifted[p]}" for p in differing[:3]
                )

                # Erased: gone from every board and table; the audit keeps a hash.
                admin.act(f"/users/{erased}/hide")
                gone = admin.act(f"DELETE /users/{erased}")["audit_target"]
                seen = admin.read([*pages, *(p for p in user_paths if f"/{erased}" in p)])
                for path in pages:
                    before = baseline.answers[path][1]
                    assert seen[path][1]["scores"] == without(before["scores"], erased), path
                assert seen[f"/api/users/{erased}"][0] == 404
                audit = admin.audit()
        finally:
            server.stop()
        left = {
            t: count(copy.url, f"SELECT COUNT(*) FROM {t} WHERE user_id = '{erased}'")  # noqa: S608
            for t in ("users", "scores", "totals", "standings")
        }
    assert left == dict.fromkeys(left, 0)
    assert gone.startswith("erased:")
    assert audit == [
        ("ops", action, target)
        for action, target in [
            ("erase", gone),
            ("hide", gone),
            ("restore", f"event:{best_lap[0]}"),
            ("restore", f"event:{event_id}"),
            ("void", f"event:{best_lap[0]}"),
            ("void", f"event:{event_id}"),
            ("unban", banned),
            ("ban", banned),
            ("unhide", hidden),
            ("hide", hidden),
        ]
    ]


# -- the downgrade -----------------------------------------------------------------------------


def test_downgrade_refuses_while_moderation_is_in_force_then_gives_back_0004(
    baseline: Baseline, tmp_path: Path
) -> None:
    """With a user hidden, one banned, an event voided and a name locked, the downgrade to
    0004 refuses, says what is in force, and changes nothing. Once each is lifted it goes
    through: the previous release's schema and rows (the rank indexes' counters and the profile
    times of the users acted on aside), no audit, no admin keys; and the previous release
    answers exactly as before (on PostgreSQL, on the Redis keys this release left)."""
    main = baseline.answers["/api/scores?offset=0&limit=100"][1]["scores"]
    hidden, banned, locked = (main[n]["user_id"] for n in (0, 3, 7))
    name = main[7]["username"]
    event_id = baseline.first_event("u06", "points")[0]
    with copy_of(baseline, tmp_path) as copy:
        server = this_server(copy, tmp_path / "new").start()
        try:
            with admin_of(server) as admin:
                admin.act(f"/users/{hidden}/hide")
                admin.act(f"/users/{banned}/ban")
                admin.act(f"/events/{event_id}/void")
                admin.act(f"/users/{locked}/rename", username=name)  # locked, as it was
        finally:
            server.stop()
        # Later revisions (0006: webhooks) step down first, each on its own; the refusal is
        # 0005's, and what it guarantees is that its own step changes nothing.
        migrations.downgrade(copy.url, MODERATION)
        schema = migrations.schema(copy.url)
        with pytest.raises(Exception, match="refusing to downgrade below 0005") as refused:
            migrations.downgrade(copy.url, PREVIOUS.head_revision)
        message = str(refused.value)
        assert "2 hidden or banned users (unhide or unban them)" in message
        assert "1 voided events (restore them)" in message
        assert "1 locked names (unlock-name)" in message
        assert "Nothing was changed" in message
        assert migrations.revision(copy.url) == MODERATION
        assert migrations.schema(copy.url) == schema
        assert count(copy.url, "SELECT COUNT(*) FROM audit") == 4
        assert count(copy.url, "SELECT COUNT(*) FROM admin_keys") == 1

        server.start()
        try:
            with admin_of(server, "ops-2") as admin:
                admin.act(f"/users/{hidden}/unhide")
                admin.act(f"/users/{banned}/unban")
                admin.act(f"/events/{event_id}/restore")
                admin.act(f"/users/{locked}/unlock-name")
        finally:
            server.stop()
        migrations.downgrade(copy.url, PREVIOUS.head_revision)
        assert migrations.revision(copy.url) == PREVIOUS.head_revision
        assert migrations.schema(copy.url) == baseline.schema  # no audit, no admin_keys
        rows = table_rows(copy.url, baseline.columns)
        with PREVIOUS.serving(baseline.src, tmp_path / "old", copy.env) as old:
            answers = asyncio.run(read(old.base_url, list(baseline.answers)))

    acted = {hidden, banned, locked}

    def comparable(table: str, table_rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Rows without what moderation moves on: the standings' versions (the rank indexes'
        counters) and the profile time of the users acted on."""
        names = baseline.columns[table]
        if table == "standings":
            version = names.index("version")
            return [r[:version] + r[version + 1 :] for r in table_rows]
        if table == "users":
            at = names.index("updated_at")
            return [(*r[:at], None, *r[at + 1 :]) if r[0] in acted else r for r in table_rows]
        return table_rows

    for table in TABLES:
        assert comparable(table, rows[table]) == comparable(table, baseline.rows[table]), table
    differing = [p for p in baseline.answers if answers[p] != baseline.answers[p]]
    assert differing == [], "\n".join(
        f"{p}: {baseline.answers[p]} != {answers[p]}" for p in differing[:3]
    )
