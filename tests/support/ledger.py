"""What the clients were told, against what the store holds: the fault tests' bookkeeping.

Every update a fault test sends is recorded with its outcome:

- ``ok``: answered 200; it must be in the store, exactly once.
- ``failed``: answered with an error that promises nothing changed (a 503 from SQLite, say); it
  must not be in the store.
- ``unknown``: no answer (connection reset, timeout, the server died), or an answer that cannot
  know (a PostgreSQL connection that broke after the statement was sent); it may be in the
  store, at most once.

:meth:`Ledger.check` compares that with the store's totals and events, user by user: the total
equals the sum of acknowledged deltas plus some of the unknown ones, each at most once, and
equals the sum of the user's stored events.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx

from tests.support.tokens import token

Outcome = Literal["ok", "failed", "unknown"]


@dataclass(frozen=True)
class Attempt:
    user_id: str
    action_id: str
    delta: int
    outcome: Outcome


@dataclass
class StoreContents:
    totals: dict[str, int]
    events: Counter[tuple[str, str]]
    """How many events each ``(user_id, action_id)`` has (the schema allows one)."""
    deltas: dict[tuple[str, str], int]


def read_sqlite(path: Path) -> StoreContents:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        totals = dict(
            conn.execute(
                "SELECT user_id, score FROM standings WHERE board_id = 'main' AND period_id = 'all'"
            ).fetchall()
        )
        rows = conn.execute("SELECT user_id, action_id, score_delta FROM scores").fetchall()
    return _contents(totals, rows)


def read_postgres(url: str) -> StoreContents:
    import psycopg

    with psycopg.connect(url) as conn:
        totals = dict(
            conn.execute(
                "SELECT user_id, score FROM standings WHERE board_id = 'main' AND period_id = 'all'"
            ).fetchall()
        )
        rows = conn.execute("SELECT user_id, action_id, score_delta FROM scores").fetchall()
    return _contents(totals, rows)


def _contents(totals: dict[str, int], rows: list[tuple[str, str, int]]) -> StoreContents:
    events: Counter[tuple[str, str]] = Counter()
    deltas = {}
    for user, action, delta in rows:
        events[(user, action)] += 1
        deltas[(user, action)] = delta
    return StoreContents(totals, events, deltas)


def integrity_ok(path: Path) -> bool:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@dataclass
class Verdict:
    acknowledged: int = 0
    lost: int = 0
    duplicates: int = 0
    phantoms: int = 0
    """``failed`` updates found in the store: an error answer that lied."""
    unknown: int = 0
    unknown_applied: int = 0
    wrong_totals: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicates or self.phantoms or self.wrong_totals)

    def add(self, other: Verdict) -> None:
        self.acknowledged += other.acknowledged
        self.lost += other.lost
        self.duplicates += other.duplicates
        self.phantoms += other.phantoms
        self.unknown += other.unknown
        self.unknown_applied += other.unknown_applied
        self.wrong_totals.extend(other.wrong_totals)


class Ledger:
    def __init__(self) -> None:
        self.attempts: list[Attempt] = []

    def record(self, user_id: str, action_id: str, delta: int, outcome: Outcome) -> None:
        self.attempts.append(Attempt(user_id, action_id, delta, outcome))

    def count(self, outcome: Outcome) -> int:
        return sum(1 for a in self.attempts if a.outcome == outcome)

    def unknown(self) -> list[Attempt]:
        return [a for a in self.attempts if a.outcome == "unknown"]

    def resolve(self, attempt: Attempt, outcome: Outcome) -> None:
        """A retry settled ``attempt`` (same ``action_id``)."""
        index = self.attempts.index(attempt)
        self.attempts[index] = Attempt(attempt.user_id, attempt.action_id, attempt.delta, outcome)

    def check(self, store: StoreContents) -> Verdict:
        verdict = Verdict()
        expected: Counter[str] = Counter()
        users = set()
        for a in self.attempts:
            key = (a.user_id, a.action_id)
            users.add(a.user_id)
            present = store.events.get(key, 0)
            if present > 1:
                verdict.duplicates += present - 1
            if a.outcome == "ok":
                verdict.acknowledged += 1
                if present == 0:
                    verdict.lost += 1
                else:
                    expected[a.user_id] += a.delta
            elif a.outcome == "failed":
                if present:
                    verdict.phantoms += 1
            else:
                verdict.unknown += 1
                if present:
                    verdict.unknown_applied += 1
                    expected[a.user_id] += a.delta
        for user in sorted(users):
            stored = store.totals.get(user, 0)
            from_events = sum(d for (u, _), d in store.deltas.items() if u == user)
            if stored != expected[user] or stored != from_events:
                verdict.wrong_totals.append(
                    f"{user}: total {stored}, events {from_events}, ledger {expected[user]}"
                )
        return verdict


class LedgerClient:
    """Posts updates with valid tokens to one or more servers and records every outcome.

    ``uncertain_statuses``: error statuses that do not prove nothing changed (recorded as
    ``unknown``); every other non-200 is ``failed``.
    """

    def __init__(
        self,
        ledger: Ledger,
        base_urls: list[str],
        *,
        timeout: float = 10,
        uncertain_statuses: frozenset[int] = frozenset(),
    ) -> None:
        self.ledger = ledger
        self.base_urls = base_urls
        self.uncertain = uncertain_statuses
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100)
        self.client = httpx.AsyncClient(timeout=timeout, limits=limits)
        self._tokens: dict[str, str] = {}
        self.statuses: Counter[int] = Counter()
        self.slowest_error = 0.0
        """Longest time any non-200 answer took, seconds."""

    def _body(self, user_id: str, delta: int, action_id: str) -> dict[str, object]:
        tok = self._tokens.setdefault(user_id, token(user_id))
        return {"user_id": user_id, "score_delta": delta, "auth_token": tok, "action_id": action_id}

    async def post(
        self, user_id: str, delta: int, action_id: str, *, server: int = 0, record: bool = True
    ) -> httpx.Response | None:
        """Send one update; ``None`` when there was no answer."""
        url = self.base_urls[server % len(self.base_urls)] + "/api/scores/update"
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            response = await self.client.post(url, json=self._body(user_id, delta, action_id))
        except httpx.HTTPError:
            if record:
                self.ledger.record(user_id, action_id, delta, "unknown")
            return None
        self.statuses[response.status_code] += 1
        if response.status_code != 200:
            self.slowest_error = max(self.slowest_error, loop.time() - started)
        if record:
            outcome: Outcome = "ok" if response.status_code == 200 else "failed"
            if response.status_code in self.uncertain:
                outcome = "unknown"
            self.ledger.record(user_id, action_id, delta, outcome)
        return response

    async def close(self) -> None:
        await self.client.aclose()


async def settle_unknowns(client: LedgerClient, store: StoreContents) -> tuple[list[str], int]:
    """Retry every ``unknown`` update with its ``action_id``, one by one, and check that each
    retry gets the stored result: an action already in the store adds nothing (the answer is
    the user's current total), a missing one is applied once. Returns what went wrong and how
    many of the unknown updates had been committed before the retry."""
    problems = []
    committed = 0
    current = dict(store.totals)
    for attempt in client.ledger.unknown():
        key = (attempt.user_id, attempt.action_id)
        response = await client.post(
            attempt.user_id, attempt.delta, attempt.action_id, record=False
        )
        if response is None or response.status_code != 200:
            problems.append(f"retry of {key} answered {response and response.status_code}")
            continue
        if key in store.events:
            committed += 1
        else:
            current[attempt.user_id] = current.get(attempt.user_id, 0) + attempt.delta
        new_score = response.json()["new_score"]
        if new_score != current.get(attempt.user_id):
            problems.append(
                f"retry of {key}: new_score {new_score}, expected {current.get(attempt.user_id)}"
            )
        client.ledger.resolve(attempt, "ok")
    return problems, committed
