"""A manual board rolled over while updates pour in: none is lost, none counts twice or in the
wrong season, and every process announces the new season at once, with one ``seq``.

The first season holds 10^5 players, written straight into the database in the stores' shape
(``tests.support.bulk``: posting them would take minutes and is not what is tested here); then
eight workers post a steady stream of updates (each with its own action id, for two dozen
players, some of them new) to every process, and ``python -m scoreboard boards rollover
season`` runs in a subprocess with the servers' environment, three times (each rollover is
one more chance for an update to land on the wrong side of it). Afterwards the database and
the API are checked against what the clients were told:

- every acknowledged update is one event, and no other event was written;
- the season its answer names is the one whose ``[starts_at, ends_at)`` holds the event's time;
- each season's standings are exactly the sums of its events per player (so each event counts
  in exactly one season), and ``main`` (never reset) the sums of all of them;
- ``/api/boards/season/periods`` lists every season with its entries and leader, and every
  season's top is the one its events make;
- a socket on ``/ws/boards/season`` of every process received one ``PERIOD_STARTED`` per
  rollover, the same (``seq`` included) on every process, within a second of the command's
  return; every message between two of them is of the season the first one started.

On SQLite (one process) and on PostgreSQL + Redis (two processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import websockets

from tests.support import bulk, migrations, services
from tests.support.server import ServerProcess
from tests.support.timing import async_wait_until, scaled
from tests.support.tokens import token

BOARDS = """
[boards.main]
title = "All time"

[boards.season]
title = "Season"
reset = "manual"
"""

PLAYERS = 100_000
WORKERS = 8
STREAM_USERS = [f"bulk-{i:06d}" for i in range(0, PLAYERS, PLAYERS // 12)] + [
    f"live-{i:02d}" for i in range(12)
]
ROLLOVERS = 3
BEFORE = AFTER = 300
"""Acknowledged updates to wait for before the first rollover starts, and after each returns."""
SEASONS = [str(n) for n in range(1, ROLLOVERS + 2)]
ANNOUNCED_WITHIN = 1.0
"""Seconds after the command's return by which every process has announced the new season."""


@dataclass
class Deployment:
    database_url: str
    servers: list[ServerProcess]

    def cli_env(self) -> dict[str, str]:
        """The servers' environment, for ``python -m scoreboard boards ...``."""
        return self.servers[0].env()


@pytest.fixture(
    params=["sqlite", pytest.param("scaled", marks=[pytest.mark.postgres, pytest.mark.redis])]
)
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    boards = tmp_path / "boards.toml"
    boards.write_text(BOARDS)
    env = {"SCOREBOARD_BOARDS": str(boards)}
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'data' / 'scoreboard.db'}"
        env["SCOREBOARD_DATABASE_URL"] = url
        yield from _running(Deployment(url, [ServerProcess(tmp_path / "a", env)]))
        return
    redis_url = services.redis_url(services.INTEGRATION_REDIS_DB)
    prefix = services.unique_prefix()
    with services.postgres_database(migrate=False) as url:
        env |= {
            "SCOREBOARD_DATABASE_URL": url,
            "SCOREBOARD_REDIS_URL": redis_url,
            "SCOREBOARD_REDIS_PREFIX": prefix,
        }
        try:
            yield from _running(
                Deployment(
                    url, [ServerProcess(tmp_path / "a", env), ServerProcess(tmp_path / "b", env)]
                )
            )
        finally:
            asyncio.run(services.delete_keys(redis_url, prefix))


def _running(deployment: Deployment) -> Iterator[Deployment]:
    try:
        yield deployment
    finally:
        for server in deployment.servers:
            server.stop()


def scoreboard(deployment: Deployment, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "scoreboard", *args],
        cwd=deployment.servers[0].data_dir.parent,
        env=deployment.cli_env(),
        capture_output=True,
        text=True,
        timeout=scaled(120),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- what the clients saw ----------------------------------------------------------------------


@dataclass
class Sent:
    user_id: str
    action_id: str
    delta: int
    status: int
    body: Any


class Stream:
    """Workers posting updates to the processes in turn until stopped."""

    def __init__(self, base_urls: list[str]) -> None:
        self.clients = [httpx.AsyncClient(base_url=u, timeout=scaled(30)) for u in base_urls]
        self.tokens = {u: token(u) for u in STREAM_USERS}
        self.sent: list[Sent] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def acknowledged(self) -> int:
        return sum(1 for s in self.sent if s.status == 200)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(w)) for w in range(WORKERS)]

    async def _work(self, worker: int) -> None:
        i = 0
        while not self._stop.is_set():
            # Every worker goes through every player: one player's updates run at once.
            user = STREAM_USERS[(worker * 5 + i) % len(STREAM_USERS)]
            delta = 1 + (i * 13 + worker * 7) % 50
            action = f"w{worker}-{i}"
            client = self.clients[(worker + i) % len(self.clients)]
            body = {
                "user_id": user,
                "score_delta": delta,
                "action_id": action,
                "auth_token": self.tokens[user],
            }
            response = await client.post("/api/scores/update", json=body)
            self.sent.append(Sent(user, action, delta, response.status_code, response.json()))
            i += 1

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        for client in self.clients:
            await client.aclose()


@dataclass
class Socket:
    """A ``/ws/boards/season`` client keeping every message with the time it arrived."""

    url: str
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def open(self) -> Socket:
        ws = await websockets.connect(self.url, open_timeout=scaled(5))
        first = json.loads(await ws.recv())
        self.messages.append((time.monotonic(), first))
        self.task = asyncio.create_task(self._read(ws))
        return self

    async def _read(self, ws: websockets.ClientConnection) -> None:
        async with ws:
            async for raw in ws:
                self.messages.append((time.monotonic(), json.loads(raw)))

    def started(self) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.messages if m["type"] == "PERIOD_STARTED"]

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


@dataclass
class Run:
    sent: list[Sent]
    sockets: list[Socket]
    returned_at: list[float]
    """When each rollover command returned (``time.monotonic``)."""
    output: list[str]


async def roll_over_under_load(deployment: Deployment) -> Run:
    sockets = [
        await Socket(s.ws_url.replace("/ws/scoreboard", "/ws/boards/season")).open()
        for s in deployment.servers
    ]
    for socket in sockets:
        assert socket.messages[0][1]["type"] == "SNAPSHOT"
        assert socket.messages[0][1]["data"]["period"] == "1"
    stream = Stream([s.base_url for s in deployment.servers])
    stream.start()
    try:

        async def acknowledged(n: int) -> bool:
            return stream.acknowledged >= n

        await async_wait_until(lambda: acknowledged(BEFORE), 30, "updates before the rollover")
        returned_at, output = [], []
        for rollover in range(1, ROLLOVERS + 1):
            command = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "scoreboard",
                "boards",
                "rollover",
                "season",
                cwd=deployment.servers[0].data_dir.parent,
                env=deployment.cli_env(),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            async with asyncio.timeout(scaled(60)):
                out, err = await command.communicate()
            returned_at.append(time.monotonic())
            output.append(out.decode())
            assert command.returncode == 0, err.decode()
            before = stream.acknowledged

            async def done(before: int = before, rollover: int = rollover) -> bool:
                announced = all(len(s.started()) >= rollover for s in sockets)
                return stream.acknowledged >= before + AFTER and announced

            await async_wait_until(done, 30, f"updates after rollover {rollover}, announced")
    finally:
        await stream.stop()
        for socket in sockets:
            await socket.close()
    return Run(stream.sent, sockets, returned_at, output)


# -- what the database holds -------------------------------------------------------------------


def moment(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite's text form
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def query(url: str, sql: str) -> list[tuple[Any, ...]]:
    db = migrations.engine(url)
    try:
        with db.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        db.dispose()


Standing = tuple[int, int, int]
"""score, version (events counted), reached (the last event's id)."""


def add(table: dict[str, Standing], user: str, delta: int, event_id: int) -> None:
    score, version, reached = table.get(user, (0, 0, 0))
    table[user] = (score + delta, version + 1, max(reached, event_id))


def top(table: dict[str, Standing], names: dict[str, str], k: int) -> list[dict[str, Any]]:
    ranked = sorted(table.items(), key=lambda item: (-item[1][0], item[1][2], item[0]))[:k]
    return [
        {"rank": i + 1, "user_id": u, "username": names[u], "score": s[0]}
        for i, (u, s) in enumerate(ranked)
    ]


Seasons = dict[str, tuple[datetime, datetime | None]]


def in_season(seasons: Seasons, period: str, at: datetime) -> bool:
    starts, ends = seasons[period]
    return starts <= at and (ends is None or at < ends)


def test_rollover_under_load_loses_nothing_and_counts_each_update_in_its_season(
    deployment: Deployment,
) -> None:
    url = deployment.database_url
    boards_file = deployment.cli_env()["SCOREBOARD_BOARDS"]
    assert "as version 1" in scoreboard(deployment, "boards", "apply", boards_file)
    ((opened_at,),) = query(url, "SELECT starts_at FROM periods WHERE board_id = 'season'")
    loaded = bulk.players(PLAYERS, moment(opened_at), datetime.now(UTC))
    bulk.load(url, loaded, [("main", "all"), ("season", "1")])
    with ThreadPoolExecutor(len(deployment.servers)) as pool:
        for started in [pool.submit(s.start, 60) for s in deployment.servers]:
            started.result()

    run = asyncio.run(roll_over_under_load(deployment))
    assert run.output == [
        f"board season: season {n} ended, season {n + 1} started\n" for n in range(1, ROLLOVERS + 1)
    ]
    seasons = {
        period: (moment(starts), None if ends is None else moment(ends))
        for period, starts, ends in query(
            url, "SELECT period_id, starts_at, ends_at FROM periods WHERE board_id = 'season'"
        )
    }
    assert sorted(seasons, key=int) == SEASONS
    assert seasons["1"][0] == moment(opened_at)
    for closed, opened in itertools.pairwise(SEASONS):
        assert seasons[closed][1] == seasons[opened][0]  # one ends where the next starts
    assert seasons[SEASONS[-1]][1] is None

    events = check_events(url, run, seasons)
    expected = check_standings(url, loaded, events, seasons)
    names = {u: u for u in STREAM_USERS} | {p.user_id: p.username for p in loaded}
    for socket in run.sockets:  # the closing season as loaded, before the stream
        snapshot = socket.messages[0][1]["data"]["rankings"]
        assert snapshot == top(bulk_season(loaded), names, 10)
    asyncio.run(check_api(deployment, expected, names, seasons))
    check_announcements(run)


def check_events(url: str, run: Run, seasons: Seasons) -> list[tuple[Any, ...]]:
    """Every update was acknowledged and is one event, nothing else was written, and the season
    its answer names holds the event's time. The stream's events, as stored."""
    assert [s for s in run.sent if s.status != 200] == []
    events = query(
        url,
        "SELECT score_id, user_id, action_id, score_delta, created_at FROM scores"
        " WHERE action_id <> 'bulk'",
    )
    written = Counter((user, action) for _, user, action, _, _ in events)
    assert [key for key, n in written.items() if n > 1] == []
    assert set(written) == {(s.user_id, s.action_id) for s in run.sent}
    stored = {(user, action): (delta, moment(at)) for _, user, action, delta, at in events}
    misplaced = []
    for s in run.sent:
        delta, at = stored[(s.user_id, s.action_id)]
        assert delta == s.delta
        assert s.body["boards"]["main"]["period"] == "all"
        period = s.body["boards"]["season"]["period"]
        if not in_season(seasons, period, at):
            misplaced.append((s.user_id, s.action_id, period, iso(at)))
    assert misplaced == [], (
        f"{len(misplaced)} events counted in a season that does not hold their time, e.g. "
        f"{misplaced[:3]}; seasons: { {p: tuple(map(iso, w)) for p, w in seasons.items()} }"
    )
    counted = Counter(s.body["boards"]["season"]["period"] for s in run.sent)
    assert counted["1"] >= BEFORE  # every season took updates of the stream
    assert all(counted[season] >= AFTER for season in SEASONS[1:]), counted
    return events


def bulk_season(loaded: list[bulk.Player]) -> dict[str, Standing]:
    table: dict[str, Standing] = {}
    for p in loaded:
        add(table, p.user_id, p.delta, p.event_id)
    return table


def check_standings(
    url: str, loaded: list[bulk.Player], events: list[tuple[Any, ...]], seasons: Seasons
) -> dict[tuple[str, str], dict[str, Standing]]:
    """Each season's standings are the sums of the events in its times (so each event counts in
    exactly one), ``main``'s the sums of all of them. The expected tables."""
    expected: dict[tuple[str, str], dict[str, Standing]] = {
        ("main", "all"): bulk_season(loaded),
        **{("season", season): {} for season in SEASONS},
    }
    expected[("season", "1")] = bulk_season(loaded)
    for event_id, user, _, delta, at in events:
        add(expected[("main", "all")], user, delta, event_id)
        (season,) = [p for p in SEASONS if in_season(seasons, p, moment(at))]
        add(expected[("season", season)], user, delta, event_id)
    stored: dict[tuple[str, str], dict[str, Standing]] = {}
    for board, period, user, score, version, reached in query(
        url, "SELECT board_id, period_id, user_id, score, version, reached FROM standings"
    ):
        stored.setdefault((board, period), {})[user] = (score, version, reached)
    assert set(stored) == set(expected)
    for key, table in expected.items():
        wrong = {u: (stored[key].get(u), s) for u, s in table.items() if stored[key].get(u) != s}
        assert wrong == {}, f"{key}, (stored, expected): {list(wrong.items())[:3]}"
        assert set(stored[key]) == set(table), key
    return expected


async def check_api(
    deployment: Deployment,
    expected: dict[tuple[str, str], dict[str, Standing]],
    names: dict[str, str],
    seasons: Seasons,
) -> None:
    """Every process lists both seasons with their entries and leaders, serves the closed
    season's top from the store and the new one's from its index."""
    last = SEASONS[-1]
    current = {
        "board": "season",
        "period": last,
        "scores": top(expected[("season", last)], names, 10),
    }

    def summary(period: str) -> dict[str, Any]:
        table = expected[("season", period)]
        leader = top(table, names, 1)[0]
        return {
            "id": period,
            "starts_at": iso(seasons[period][0]),
            "ends_at": iso(seasons[period][1]),
            "entries": len(table),
            "leader": {k: leader[k] for k in ("user_id", "username", "score")},
        }

    for server in deployment.servers:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            periods = (await client.get("/api/boards/season/periods")).json()
            assert periods == {"periods": [summary(p) for p in reversed(SEASONS)], "next": None}
            for period in SEASONS[:-1]:
                archived = (await client.get(f"/api/boards/season/top10?period={period}")).json()
                scores = top(expected[("season", period)], names, 10)
                assert archived == {"board": "season", "period": period, "scores": scores}
            board = (await client.get("/api/boards/season")).json()
            assert board["period"] == {
                "id": last,
                "starts_at": iso(seasons[last][0]),
                "ends_at": None,
            }

            async def serves_current(client: httpx.AsyncClient = client) -> bool:
                return bool((await client.get("/api/boards/season/top10")).json() == current)

            await async_wait_until(serves_current, 5, f"the last season's top on {server.base_url}")


def check_announcements(run: Run) -> None:
    """Every socket got one PERIOD_STARTED per rollover, each the same on every process and
    within a second of its command's return; the messages between two of them are of the season
    the first one started, all in seq order."""
    announced: list[list[dict[str, Any]]] = []
    for socket in run.sockets:
        started = socket.started()
        assert [(m["data"]["previous"], m["data"]["period"]) for _, m in started] == list(
            itertools.pairwise(SEASONS)
        )
        for (at, _), returned_at in zip(started, run.returned_at, strict=True):
            assert at - returned_at <= scaled(ANNOUNCED_WITHIN), at - returned_at
        announced.append([m["data"] for _, m in started])
        messages = [m for _, m in socket.messages]
        seqs = [m["data"]["seq"] for m in messages]
        assert seqs == sorted(set(seqs))
        season = "1"
        for message in messages:
            if message["type"] == "PERIOD_STARTED":
                season = message["data"]["period"]
            assert message["data"]["period"] == season, (message, season)
    assert all(seen == announced[0] for seen in announced), announced
