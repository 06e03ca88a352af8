"""In-memory score store: the unit tests' fake, with the same contract as the SQL stores.

Nothing is durable; it exists so the service can be tested without I/O and so the contract
tests have a reference implementation to compare the real stores with. Everything happens in
the event loop, one call at a time, so each call is its own transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from scoreboard import periods
from scoreboard.boards import Board, BoardsConfig
from scoreboard.errors import ActionConflict, ConfigChanged, ScoreOutOfRange
from scoreboard.model import (
    MAX_SCORE,
    Applied,
    BoardStanding,
    Entry,
    HistoryPoint,
    HistoryQuery,
    PeriodSummary,
    RankedEntry,
    ScoreEvent,
    ScoreUpdate,
    Standing,
    UserProfile,
    rank_key,
    rank_score,
)
from scoreboard.periods import Period

_TRUNCATE: dict[str, Callable[[datetime], datetime]] = {
    "hour": lambda t: t.replace(minute=0, second=0, microsecond=0),
    "day": lambda t: t.replace(hour=0, minute=0, second=0, microsecond=0),
}


@dataclass(slots=True)
class _Event:
    event_id: int
    user_id: str
    metric: str
    delta: int
    action_id: str
    at: datetime
    score_after: int


class MemoryScoreStore:
    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._names: dict[str, str] = {}
        self._created: dict[str, datetime] = {}
        self._actions: dict[tuple[str, str], _Event] = {}
        self._events: dict[tuple[str, str], list[_Event]] = {}  # (user, metric) -> events
        self._totals: dict[tuple[str, str], int] = {}
        self._standings: dict[tuple[str, str], dict[str, tuple[Standing, datetime]]] = {}
        self._periods: dict[str, dict[str, Period]] = {}
        self._config: BoardsConfig | None = None
        self._config_json: str | None = None
        self._version = 0
        self._count = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # -- the configuration ------------------------------------------------------------------

    async def load_config(self) -> tuple[BoardsConfig | None, int]:
        return self._config, self._version

    async def config_version(self) -> int:
        return self._version

    async def apply_config(
        self, config: BoardsConfig, *, expected_version: int, fill: Sequence[str]
    ) -> int:
        if expected_version != self._version:
            raise ConfigChanged(f"the configuration is at version {self._version}")
        now = self._clock()
        for board_id in fill:
            board = config.boards[board_id]
            current = self._current(board, now, create=True)
            assert current is not None
            self._fill(board, current)
        self._config = config
        self._version += 1
        return self._version

    def _current(self, board: Board, now: datetime, *, create: bool = False) -> Period | None:
        recorded = self._periods.setdefault(board.id, {})
        if board.reset == "manual":
            season = next((p for p in recorded.values() if p.ends_at is None), None)
            if season is None and create:
                season = Period(periods.FIRST_SEASON, now, None)
                recorded[season.id] = season
            return season
        period = periods.period_at(board.reset, board.timezone, now)
        recorded.setdefault(period.id, period)
        return period

    def _fill(self, board: Board, period: Period) -> None:
        # Replacing whatever the period held: a board added back missed the events meanwhile.
        table = self._standings[(board.id, period.id)] = {}
        for (user_id, metric), events in self._events.items():
            if metric != board.metric:
                continue
            inside = [e for e in events if e.at in period]
            standing = None
            for event in inside:
                standing = self._moved(board, standing, user_id, event)
            if standing is not None:
                table[user_id] = (standing, inside[-1].at)

    def _moved(
        self, board: Board, old: Standing | None, user_id: str, event: _Event
    ) -> Standing | None:
        """The standing after ``event``, or ``None`` when it does not change it."""
        name = self._names[user_id]
        if old is None:
            return Standing(user_id, name, event.delta, 1, event.event_id)
        if board.aggregate == "sum":
            return Standing(user_id, name, old.score + event.delta, old.version + 1, event.event_id)
        if rank_score(event.delta, board.order) < rank_score(old.score, board.order):
            return Standing(user_id, name, event.delta, old.version + 1, event.event_id)
        return None

    # -- events -----------------------------------------------------------------------------

    def _feeds(self, metric: str) -> list[Board]:
        if self._config is None:
            return []
        return [b for b in self._config.boards.values() if b.metric == metric]

    async def apply(self, update: ScoreUpdate) -> Applied:
        now = self._clock()
        boards = self._feeds(update.metric)
        action_id = update.action_id or uuid.uuid4().hex
        previous = self._actions.get((update.user_id, action_id))
        if previous is not None:
            if previous.delta != update.delta or previous.metric != update.metric:
                raise ActionConflict(
                    "this action_id was already used with a different score_delta or metric"
                )
            return self._replayed(update.user_id, boards, now)
        key = (update.user_id, update.metric)
        total = self._totals.get(key, 0) + update.delta
        if abs(total) > MAX_SCORE:
            raise ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}")
        moves: list[tuple[Board, Period, Standing | None]] = []
        self._count += 1
        event = _Event(
            self._count, update.user_id, update.metric, update.delta, action_id, now, total
        )
        name = self._names.get(update.user_id)
        self._names[update.user_id] = update.username or name or update.user_id
        for board in boards:
            period = self._current(board, now)
            if period is None:
                continue
            table = self._standings.setdefault((board.id, period.id), {})
            old = table.get(update.user_id)
            moved = self._moved(board, old[0] if old else None, update.user_id, event)
            if moved is not None and abs(moved.score) > MAX_SCORE:
                if name is None:
                    del self._names[update.user_id]
                else:
                    self._names[update.user_id] = name
                self._count -= 1
                raise ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}")
            moves.append((board, period, moved))
        # Nothing was refused: commit.
        username = self._names[update.user_id]
        self._created.setdefault(update.user_id, now)
        self._actions[(update.user_id, action_id)] = event
        self._events.setdefault(key, []).append(event)
        self._totals[key] = total
        result = []
        for board, period, moved in moves:
            table = self._standings[(board.id, period.id)]
            if moved is not None:
                moved = moved._replace(username=username)
                table[update.user_id] = (moved, now)
            standing = table[update.user_id][0]._replace(username=username)
            result.append(BoardStanding(board.id, period.id, standing, moved is not None))
        return Applied(update.user_id, username, tuple(result))

    def _replayed(self, user_id: str, boards: list[Board], now: datetime) -> Applied:
        result = []
        for board in boards:
            period = self._current(board, now)
            if period is None:
                continue
            found = self._standings.get((board.id, period.id), {}).get(user_id)
            result.append(BoardStanding(board.id, period.id, found[0] if found else None, False))
        return Applied(user_id, self._names[user_id], tuple(result), replayed=True)

    async def action_delta(self, user_id: str, action_id: str) -> int | None:
        event = self._actions.get((user_id, action_id))
        return None if event is None else event.delta

    async def profile(self, user_id: str) -> UserProfile | None:
        if user_id not in self._names:
            return None
        return UserProfile(user_id, self._names[user_id], self._created[user_id])

    def _between(self, q: HistoryQuery) -> list[_Event]:
        return [
            e
            for e in self._events.get((q.user_id, q.metric), [])
            if (q.since is None or e.at >= q.since) and (q.until is None or e.at < q.until)
        ]

    async def history(self, q: HistoryQuery) -> list[ScoreEvent]:
        events = self._between(q)
        if q.after is not None:
            after = q.after
            events = [e for e in events if (e.at, e.event_id) > after]
        return [
            ScoreEvent(e.event_id, e.at, e.delta, e.score_after, e.action_id)
            for e in events[: q.limit]
        ]

    async def history_buckets(self, q: HistoryQuery) -> list[HistoryPoint]:
        last: dict[datetime, int] = {}
        for event in self._between(q):
            last[_TRUNCATE[q.bucket or "day"](event.at)] = event.score_after
        return [HistoryPoint(at, score) for at, score in sorted(last.items())][: q.limit]

    # -- standings --------------------------------------------------------------------------

    def _ordered(self, board: str, period: str) -> list[Standing]:
        order = "desc"
        if self._config is not None and board in self._config.boards:
            order = self._config.boards[board].order
        table = self._standings.get((board, period), {})
        return sorted(
            (s for s, _ in table.values()),
            key=lambda s: rank_key(s.score, s.reached, s.user_id, order),
        )

    async def entry(self, board: str, period: str, user_id: str) -> Entry | None:
        found = self._standings.get((board, period), {}).get(user_id)
        if found is None:
            return None
        standing, updated = found
        return Entry(standing._replace(username=self._names[user_id]), updated)

    async def rank_of(self, board: str, period: str, order: str, standing: Standing) -> int:
        mine = rank_key(standing.score, standing.reached, standing.user_id, order)
        table = self._standings.get((board, period), {})
        return 1 + sum(
            1
            for s, _ in table.values()
            if rank_key(s.score, s.reached, s.user_id, order)[:2] < mine[:2]
        )

    async def page(self, board: str, period: str, offset: int, limit: int) -> list[Standing]:
        return [
            s._replace(username=self._names[s.user_id])
            for s in self._ordered(board, period)[offset : offset + limit]
        ]

    async def count(self, board: str, period: str) -> int:
        return len(self._standings.get((board, period), {}))

    async def iter_standings(self, board: str, period: str) -> AsyncIterator[list[Standing]]:
        yield [
            s._replace(username=self._names[s.user_id])
            for s, _ in self._standings.get((board, period), {}).values()
        ]

    async def has_data(self, board: str) -> bool:
        return any(b == board and table for (b, _), table in self._standings.items())

    # -- periods ----------------------------------------------------------------------------

    async def period(self, board: str, period_id: str) -> Period | None:
        return self._periods.get(board, {}).get(period_id)

    async def periods(
        self, board: str, *, limit: int, before: str | None = None
    ) -> list[PeriodSummary]:
        known = sorted(
            self._periods.get(board, {}).values(),
            key=lambda p: p.starts_at or datetime.min.replace(tzinfo=UTC),
            reverse=True,
        )
        if before is not None:
            ids = [p.id for p in known]
            known = known[ids.index(before) + 1 :] if before in ids else []
        out = []
        for p in known[:limit]:
            ordered = self._ordered(board, p.id)
            leader = None
            if ordered:
                first = ordered[0]
                leader = RankedEntry(1, first.user_id, self._names[first.user_id], first.score)
            out.append(PeriodSummary(board, p.id, p.starts_at, p.ends_at, len(ordered), leader))
        return out

    async def start_period(self, board: str, period: Period) -> None:
        self._periods.setdefault(board, {}).setdefault(period.id, period)

    async def seasons(self) -> dict[str, Period]:
        return {
            board: p
            for board, recorded in self._periods.items()
            for p in recorded.values()
            if p.ends_at is None and p.starts_at is not None
        }

    async def rollover(self, board: Board) -> tuple[Period, Period]:
        now = self._clock()
        current = self._current(board, now, create=True)
        assert current is not None
        closed, opened = periods.rollover(current, now)
        recorded = self._periods[board.id]
        recorded[closed.id] = closed
        recorded[opened.id] = opened
        return closed, opened

    async def prune(self, board: str, keep: int) -> list[str]:
        now = self._clock()
        closed = sorted(
            (
                p
                for p in self._periods.get(board, {}).values()
                if p.ends_at is not None and p.ends_at <= now
            ),
            key=lambda p: p.starts_at or datetime.min.replace(tzinfo=UTC),
            reverse=True,
        )
        doomed = [p.id for p in closed[keep:]]
        for period_id in doomed:
            del self._periods[board][period_id]
            self._standings.pop((board, period_id), None)
        return doomed

    @property
    def event_count(self) -> int:
        return self._count
