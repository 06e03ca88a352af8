"""In-memory score store: the unit tests' fake, with the same contract as the SQL stores.

Nothing is durable; it exists so the service can be tested without I/O and so the contract
tests have a reference implementation to compare the real stores with.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from scoreboard.errors import ActionConflict, ScoreOutOfRange
from scoreboard.model import (
    MAX_SCORE,
    Applied,
    HistoryPoint,
    HistoryQuery,
    ScoreEvent,
    ScoreUpdate,
    UserProfile,
    UserTotal,
    rank_key,
)

_TRUNCATE: dict[str, Callable[[datetime], datetime]] = {
    "hour": lambda t: t.replace(minute=0, second=0, microsecond=0),
    "day": lambda t: t.replace(hour=0, minute=0, second=0, microsecond=0),
}


class MemoryScoreStore:
    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._users: dict[str, UserTotal] = {}
        self._updated: dict[str, datetime] = {}
        self._actions: dict[tuple[str, str], int] = {}
        self._events: dict[str, list[ScoreEvent]] = {}
        self._count = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def apply(self, update: ScoreUpdate) -> Applied:
        action_id = update.action_id or uuid.uuid4().hex
        previous = self._actions.get((update.user_id, action_id))
        if previous is not None:
            if previous != update.delta:
                raise ActionConflict("this action_id was already used with a different score_delta")
            return Applied(self._users[update.user_id], replayed=True)
        old = self._users.get(update.user_id)
        if abs((old.score if old else 0) + update.delta) > MAX_SCORE:
            raise ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}")
        self._count += 1
        now = self._clock()
        total = UserTotal(
            user_id=update.user_id,
            username=update.username or (old.username if old else update.user_id),
            score=(old.score if old else 0) + update.delta,
            version=(old.version if old else 0) + 1,
            reached=self._count,
        )
        self._actions[(update.user_id, action_id)] = update.delta
        self._events.setdefault(update.user_id, []).append(
            ScoreEvent(self._count, now, update.delta, total.score, action_id)
        )
        self._users[update.user_id] = total
        self._updated[update.user_id] = now
        return Applied(total)

    async def action_delta(self, user_id: str, action_id: str) -> int | None:
        return self._actions.get((user_id, action_id))

    async def get_user(self, user_id: str) -> UserTotal | None:
        return self._users.get(user_id)

    async def rank_of(self, total: UserTotal) -> int:
        key = rank_key(total.score, total.reached, total.user_id)
        return 1 + sum(rank_key(u.score, u.reached, u.user_id) < key for u in self._users.values())

    async def profile(self, user_id: str) -> UserProfile | None:
        total = self._users.get(user_id)
        if total is None:
            return None
        return UserProfile(user_id, total.username, total.score, self._updated[user_id])

    def _between(
        self, user_id: str, since: datetime | None, until: datetime | None
    ) -> list[ScoreEvent]:
        return [
            e
            for e in self._events.get(user_id, [])
            if (since is None or e.at >= since) and (until is None or e.at < until)
        ]

    async def history(self, q: HistoryQuery) -> list[ScoreEvent]:
        user_id, since, until, after, limit = q.user_id, q.since, q.until, q.after, q.limit
        events = self._between(user_id, since, until)
        if after is not None:
            events = [e for e in events if (e.at, e.event_id) > after]
        return events[:limit]

    async def history_buckets(self, q: HistoryQuery) -> list[HistoryPoint]:
        user_id, since, until, limit = q.user_id, q.since, q.until, q.limit
        bucket = q.bucket or "day"
        last: dict[datetime, int] = {}
        for event in self._between(user_id, since, until):
            last[_TRUNCATE[bucket](event.at)] = event.score
        return [HistoryPoint(at, score) for at, score in sorted(last.items())][:limit]

    async def iter_totals(self) -> AsyncIterator[list[UserTotal]]:
        yield list(self._users.values())

    @property
    def event_count(self) -> int:
        return self._count
