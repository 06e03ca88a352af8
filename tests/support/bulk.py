"""Many players written straight into a migrated database, in the shape the stores write them:
one ``points`` event each, its user, running total and a standing on each board given.

Posting 10^5 updates over HTTP would take minutes and test nothing a test of a rollover is
about; the rows here are what those updates would have left (the event's id is the standing's
``reached``, its time the standing's ``updated_at``, ``version`` 1). Player ``i`` is
``{prefix}-{i:06d}`` with ``delta_of(i)`` points: totals from 1 to 1000, so ties abound.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime

from scoreboard.model import rank_score

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # the SQLite store's text form of a time


@dataclass(frozen=True, slots=True)
class Player:
    user_id: str
    username: str
    delta: int
    event_id: int
    at: datetime


def delta_of(i: int) -> int:
    return 1 + (i * 7919) % 1000


def players(count: int, since: datetime, until: datetime, prefix: str = "bulk") -> list[Player]:
    """Player ``i`` scored at ``since + (until - since) * i / count``, event id ``i + 1``."""
    step = (until - since) / count
    return [
        Player(f"{prefix}-{i:06d}", f"Bulk {i}", delta_of(i), i + 1, since + step * i)
        for i in range(count)
    ]


def load(database_url: str, loaded: list[Player], standings: list[tuple[str, str]]) -> None:
    """Write ``loaded`` (event ids 1..n: the database must have no events yet), each with a
    standing in every ``(board, period)`` of ``standings`` (boards ordered ``desc``)."""
    users = [(p.user_id, p.username, p.at, p.at) for p in loaded]
    events = [(p.event_id, p.user_id, "points", p.delta, "bulk", p.at, p.delta) for p in loaded]
    totals = [(p.user_id, "points", p.delta, p.at) for p in loaded]
    ranked = [
        (board, period, p.user_id, p.delta, rank_score(p.delta), p.event_id, 1, p.at)
        for board, period in standings
        for p in loaded
    ]
    tables = {
        "users (user_id, username, created_at, updated_at)": users,
        "scores (score_id, user_id, metric, score_delta, action_id, created_at, score_after)": (
            events
        ),
        "totals (user_id, metric, total, last_at)": totals,
        "standings (board_id, period_id, user_id, score, rank_score, reached, version,"
        " updated_at)": ranked,
    }
    if database_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as conn, conn:
            for table, rows in tables.items():
                marks = ", ".join("?" * len(rows[0]))
                conn.executemany(
                    f"INSERT INTO {table} VALUES ({marks})",  # noqa: S608
                    [tuple(_text(v) for v in row) for row in rows],
                )
        return
    import psycopg

    with psycopg.connect(database_url) as conn:
        for table, rows in tables.items():
            with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        conn.execute("SELECT setval('scores_score_id_seq', %s)", (len(loaded),))


def _text(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(_TIME_FORMAT)
    return value
