"""In-memory score store: the unit tests' fake, with the same contract as the SQL stores.

Nothing is durable; it exists so the service can be tested without I/O and so the contract
tests have a reference implementation to compare the real stores with. Everything happens in
the event loop, one call at a time, so each call is its own transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from scoreboard import periods
from scoreboard.adapters.memory_outbox import MemoryOutbox
from scoreboard.boards import Board, BoardsConfig
from scoreboard.errors import (
    ActionConflict,
    Banned,
    ConfigChanged,
    Conflict,
    NotFound,
    ScoreOutOfRange,
)
from scoreboard.model import (
    MAX_SCORE,
    AdminKey,
    Applied,
    Audit,
    AuditEntry,
    BoardStanding,
    Entry,
    EventRecord,
    ExportRow,
    HistoryPoint,
    HistoryQuery,
    LedgerEvent,
    Moderated,
    Moved,
    Movers,
    PeriodSummary,
    RankedEntry,
    RowKey,
    ScoreEvent,
    ScoreUpdate,
    Standing,
    StoredRow,
    UserProfile,
    rank_key,
    rank_score,
)
from scoreboard.periods import Period
from scoreboard.webhooks import Notice

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
    source: str = "user"
    voided: bool = False


@dataclass(slots=True)
class _User:
    name: str
    created: datetime
    status: str = "active"
    name_locked: bool = False


@dataclass(slots=True)
class _Row:
    """A standing as stored, with when it last changed and why it is not shown (bits: 1 the
    user is hidden or banned, 2 every event of it is voided; 0 shown)."""

    standing: Standing
    updated: datetime
    hidden: int = 0


HIDDEN_USER = 1
EMPTY = 2
KEY_TOUCH_INTERVAL = timedelta(minutes=1)


class MemoryScoreStore(MemoryOutbox):
    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__()
        self._clock = clock
        self._users: dict[str, _User] = {}
        self._actions: dict[tuple[str, str], _Event] = {}
        self._events: dict[tuple[str, str], list[_Event]] = {}  # (user, metric) -> events
        self._by_id: dict[int, _Event] = {}
        self._totals: dict[tuple[str, str], int] = {}
        self._standings: dict[tuple[str, str], dict[str, _Row]] = {}
        self._periods: dict[str, dict[str, Period]] = {}
        self._audit: list[AuditEntry] = []
        self._keys: dict[str, tuple[str, AdminKey]] = {}  # name -> (hash, key)
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
            counted = self._counted(board, events, period)
            standing = None
            for event in counted:
                standing = self._moved(board, standing, user_id, event) or standing
            if standing is not None:
                table[user_id] = _Row(standing, counted[-1].at, self._user_bit(user_id))

    @staticmethod
    def _counted(board: Board, events: list[_Event], period: Period) -> list[_Event]:
        """The events that count on ``board`` in ``period``: not voided, and on a ``best``
        board not an operator's adjustment."""
        return [
            e
            for e in events
            if e.at in period and not e.voided and (board.aggregate == "sum" or e.source == "user")
        ]

    def _user_bit(self, user_id: str) -> int:
        user = self._users.get(user_id)
        return 0 if user is None or user.status == "active" else HIDDEN_USER

    def _moved(
        self, board: Board, old: Standing | None, user_id: str, event: _Event, version: int = 0
    ) -> Standing | None:
        """The standing after ``event``, or ``None`` when it does not change it. ``version``:
        the version of an empty row the event starts again (0: none)."""
        name = self._users[user_id].name
        if old is None:
            return Standing(user_id, name, event.delta, version + 1, event.event_id)
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
        return self._apply(update)

    def _apply(self, update: ScoreUpdate) -> Applied:
        now = self._clock()
        admin = update.source == "admin"
        boards = [b for b in self._feeds(update.metric) if not admin or b.aggregate == "sum"]
        user = self._users.get(update.user_id)
        if user is not None and user.status == "banned" and not admin:
            raise Banned("this user is banned: their updates are refused")
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
        if user is None:
            name = update.username or update.user_id
        elif update.username and not user.name_locked and not admin:
            name = update.username
        else:
            name = user.name
        bit = 0 if user is None or user.status == "active" else HIDDEN_USER
        event = _Event(
            self._count + 1,
            update.user_id,
            update.metric,
            update.delta,
            action_id,
            now,
            total,
            update.source,
        )
        moves: list[tuple[Board, Period, Standing | None]] = []
        for board in boards:
            period = self._current(board, now)
            if period is None:
                continue
            row = self._standings.get((board.id, period.id), {}).get(update.user_id)
            if row is None or row.hidden & EMPTY:
                old, version = None, (0 if row is None else row.standing.version)
            else:
                old, version = row.standing, 0
            moved = self._moved_as(board, old, name, event, version)
            if moved is not None and abs(moved.score) > MAX_SCORE:
                raise ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}")
            moves.append((board, period, moved))
        # Nothing was refused: commit.
        self._count += 1
        if user is None:
            user = self._users[update.user_id] = _User(name, now)
        user.name = name
        self._actions[(update.user_id, action_id)] = event
        self._events.setdefault(key, []).append(event)
        self._by_id[event.event_id] = event
        self._totals[key] = total
        result = []
        for board, period, moved in moves:
            table = self._standings.setdefault((board.id, period.id), {})
            if moved is not None:
                table[update.user_id] = _Row(moved, now, bit)
            row = table[update.user_id]
            standing = row.standing._replace(username=name)
            result.append(
                BoardStanding(board.id, period.id, standing, moved is not None, row.hidden == 0)
            )
        return Applied(update.user_id, name, tuple(result))

    def _moved_as(
        self, board: Board, old: Standing | None, name: str, event: _Event, version: int
    ) -> Standing | None:
        """:meth:`_moved`, for a user who may not be stored yet."""
        if old is None:
            return Standing(event.user_id, name, event.delta, version + 1, event.event_id)
        if board.aggregate == "sum":
            return Standing(
                event.user_id, name, old.score + event.delta, old.version + 1, event.event_id
            )
        if rank_score(event.delta, board.order) < rank_score(old.score, board.order):
            return Standing(event.user_id, name, event.delta, old.version + 1, event.event_id)
        return None

    def _replayed(self, user_id: str, boards: list[Board], now: datetime) -> Applied:
        name = self._users[user_id].name
        result = []
        for board in boards:
            period = self._current(board, now)
            if period is None:
                continue
            row = self._standings.get((board.id, period.id), {}).get(user_id)
            standing = None if row is None or row.hidden & EMPTY else row.standing
            shown = row is not None and row.hidden == 0
            if standing is not None:
                standing = standing._replace(username=name)
            result.append(BoardStanding(board.id, period.id, standing, False, shown))
        return Applied(user_id, name, tuple(result), replayed=True)

    async def action_delta(self, user_id: str, action_id: str) -> int | None:
        event = self._actions.get((user_id, action_id))
        return None if event is None else event.delta

    async def profile(self, user_id: str) -> UserProfile | None:
        user = self._users.get(user_id)
        if user is None:
            return None
        return UserProfile(user_id, user.name, user.created, user.status, user.name_locked)

    def _between(self, q: HistoryQuery) -> list[_Event]:
        return [
            e
            for e in self._events.get((q.user_id, q.metric), [])
            if not e.voided
            and (q.since is None or e.at >= q.since)
            and (q.until is None or e.at < q.until)
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

    def _shown(self, board: str, period: str) -> list[Standing]:
        return [
            row.standing._replace(username=self._users[user_id].name)
            for user_id, row in self._standings.get((board, period), {}).items()
            if row.hidden == 0
        ]

    def _ordered(self, board: str, period: str) -> list[Standing]:
        order = "desc"
        if self._config is not None and board in self._config.boards:
            order = self._config.boards[board].order
        return sorted(
            self._shown(board, period),
            key=lambda s: rank_key(s.score, s.reached, s.user_id, order),
        )

    async def entry(self, board: str, period: str, user_id: str) -> Entry | None:
        row = self._standings.get((board, period), {}).get(user_id)
        if row is None or row.hidden:
            return None
        return Entry(row.standing._replace(username=self._users[user_id].name), row.updated)

    async def rank_of(self, board: str, period: str, order: str, standing: Standing) -> int:
        mine = rank_key(standing.score, standing.reached, standing.user_id, order)
        return 1 + sum(
            1
            for s in self._shown(board, period)
            if rank_key(s.score, s.reached, s.user_id, order)[:2] < mine[:2]
        )

    async def page(self, board: str, period: str, offset: int, limit: int) -> list[Standing]:
        return self._ordered(board, period)[offset : offset + limit]

    async def count(self, board: str, period: str) -> int:
        return len(self._shown(board, period))

    async def iter_standings(self, board: str, period: str) -> AsyncIterator[list[Standing]]:
        yield self._shown(board, period)

    async def iter_ranked(
        self, board: str, period: str, *, chunk: int = 5000
    ) -> AsyncIterator[list[ExportRow]]:
        ordered = self._ordered(board, period)
        for start in range(0, len(ordered), chunk):
            yield [
                ExportRow(start + n + 1, s.user_id, s.username, s.score, self._by_id[s.reached].at)
                for n, s in enumerate(ordered[start : start + chunk])
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
                leader = RankedEntry(1, first.user_id, first.username, first.score)
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
        if self._by_id:  # strictly after the last event: the season's span holds its events
            now = max(now, self._by_id[max(self._by_id)].at + timedelta(microseconds=1))
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

    # -- operators (AdminStore) --------------------------------------------------------------

    def _record(self, audit: Audit, now: datetime) -> None:
        self._audit.append(
            AuditEntry(
                len(self._audit) + 1,
                now,
                audit.key,
                audit.action,
                audit.target,
                audit.reason,
                dict(audit.details or {}),
            )
        )

    async def record(self, audit: Audit) -> None:
        self._record(audit, self._clock())

    async def audit_page(self, *, limit: int, before: int | None = None) -> list[AuditEntry]:
        entries = [e for e in reversed(self._audit) if before is None or e.id < before]
        return entries[:limit]

    @staticmethod
    def _record_of(event: _Event) -> EventRecord:
        return EventRecord(
            event.event_id,
            event.user_id,
            event.metric,
            event.delta,
            event.action_id,
            event.source,
            event.at,
            event.voided,
        )

    async def events_of(
        self, user_id: str, *, limit: int, before: int | None = None
    ) -> list[EventRecord]:
        mine = sorted(
            (e for (u, _), events in self._events.items() if u == user_id for e in events),
            key=lambda e: e.event_id,
            reverse=True,
        )
        return [self._record_of(e) for e in mine if before is None or e.event_id < before][:limit]

    async def event(self, event_id: int) -> EventRecord | None:
        found = self._by_id.get(event_id)
        return None if found is None else self._record_of(found)

    async def standing_of(
        self, board: str, period: str, user_id: str
    ) -> tuple[Standing, bool] | None:
        row = self._standings.get((board, period), {}).get(user_id)
        if row is None or row.hidden & EMPTY:
            return None
        return row.standing._replace(username=self._users[user_id].name), row.hidden == 0

    def _period_of_event(self, board: Board, at: datetime) -> Period | None:
        """The recorded period of ``board`` that holds ``at`` (``None``: deleted by ``keep``,
        or a manual board's time before its first season)."""
        recorded = self._periods.get(board.id, {})
        if board.reset == "manual":
            return next((p for p in recorded.values() if p.starts_at and at in p), None)
        return recorded.get(periods.period_at(board.reset, board.timezone, at).id)

    def _recompute(self, board: Board, period: Period, user_id: str, now: datetime) -> Moved | None:
        """The user's standing on ``board`` in ``period`` again from the events that count;
        ``None`` when they have no row there and nothing counts."""
        table = self._standings.setdefault((board.id, period.id), {})
        row = table.get(user_id)
        counted = self._counted(board, self._events.get((user_id, board.metric), []), period)
        if row is None and not counted:
            return None
        version = 0 if row is None else row.standing.version
        standing, at = None, now
        for event in counted:  # the standing's time: the event it was last moved by
            moved = self._moved(board, standing, user_id, event)
            if moved is not None:
                standing, at = moved, event.at
        name = self._users[user_id].name
        if standing is None:  # nothing counts any more: the row stays, not shown
            assert row is not None
            kept = Standing(user_id, name, 0, version + 1, 0)
            table[user_id] = _Row(kept, now, (row.hidden & HIDDEN_USER) | EMPTY)
        else:
            kept = standing._replace(username=name, version=version + 1)
            bit = self._user_bit(user_id) if row is None else row.hidden & HIDDEN_USER
            table[user_id] = _Row(kept, at, bit)
        shown = table[user_id].hidden == 0
        return Moved(board.id, period.id, user_id, kept if shown else None, kept.version)

    def _rescore(self, user_id: str, metric: str) -> None:
        """Every counting event's total after it, and the user's total, again."""
        total = 0
        for event in self._events.get((user_id, metric), []):
            if not event.voided:
                total += event.delta
                event.score_after = total
        self._totals[(user_id, metric)] = total

    async def void(
        self,
        event_id: int,
        config: BoardsConfig,
        audit: Audit,
        *,
        restore: bool = False,
        notice: Notice | None = None,
    ) -> Moderated:
        event = self._by_id.get(event_id)
        if event is None:
            raise NotFound(f"there is no event {event_id}", code="unknown_event")
        if event.voided != restore:  # already as asked
            return Moderated(False)
        if restore:
            total = self._totals.get((event.user_id, event.metric), 0) + event.delta
            if abs(total) > MAX_SCORE:
                raise ScoreOutOfRange(f"a total must stay within ±{MAX_SCORE}")
        now = self._clock()
        event.voided = not restore
        self._rescore(event.user_id, event.metric)
        moved = []
        for board in config.boards.values():
            if board.metric != event.metric:
                continue
            period = self._period_of_event(board, event.at)
            if period is not None:
                done = self._recompute(board, period, event.user_id, now)
                if done is not None:
                    moved.append(done)
        self._record(audit, now)
        if notice is not None:
            self._enqueue(notice, now)
        return Moderated(True, tuple(moved))

    # -- verify and repair ------------------------------------------------------------------

    async def ledger(
        self,
        metric: str,
        since: datetime | None,
        until: datetime | None,
        *,
        user_id: str | None = None,
    ) -> AsyncIterator[list[LedgerEvent]]:
        span = Period("", since, until)
        out = [
            self._ledger_event(e)
            for e in sorted(self._by_id.values(), key=lambda e: e.event_id)
            if e.metric == metric and e.at in span and user_id in (None, e.user_id)
        ]
        if out:
            yield out

    def _ledger_event(self, e: _Event) -> LedgerEvent:
        return LedgerEvent(
            e.event_id,
            e.user_id,
            e.delta,
            e.source,
            e.voided,
            self._users[e.user_id].status == "active",
            e.at,
        )

    async def backward(
        self,
        board: Board,
        period: Period,
        at: datetime,
        user_id: str,
        most: int,
        place: Callable[[Movers], tuple[int, int] | None],
    ) -> tuple[Movers, int] | None:
        after = Period("", at, period.ends_at)
        before = Period("", period.starts_at, at)
        found = [
            e.user_id for e in self._by_id.values() if e.metric == board.metric and e.at in after
        ]
        if len(found) > most:
            return None
        earlier = [e for e in self._by_id.values() if e.metric == board.metric and e.at in before]
        if len(earlier) < len(found):
            return None
        users = frozenset(found)
        events = tuple(
            self._ledger_event(e)
            for e in sorted(self._by_id.values(), key=lambda e: e.event_id)
            if e.user_id in users and e.metric == board.metric and e.at in before
        )
        table = self._standings.get((board.id, period.id), {})

        def key(row: _Row) -> tuple[int, int]:
            return rank_score(row.standing.score, board.order), row.standing.reached

        rows = {u: RowKey(*key(table[u]), table[u].hidden) for u in users | {user_id} if u in table}
        movers = Movers(users, events, rows)
        placed = place(movers)
        if placed is None:
            return movers, 0
        return movers, sum(1 for row in table.values() if row.hidden == 0 and key(row) < placed)

    async def stored(
        self, board: str, period: str, *, user_id: str | None = None
    ) -> AsyncIterator[list[StoredRow]]:
        order = "desc"
        if self._config is not None and board in self._config.boards:
            order = self._config.boards[board].order
        rows = [
            StoredRow(
                u,
                self._users[u].name,
                row.standing.score,
                rank_score(row.standing.score, order),
                row.standing.reached,
                row.standing.version,
                row.hidden,
            )
            for u, row in self._standings.get((board, period), {}).items()
            if user_id in (None, u)
        ]
        if rows:
            yield rows

    async def recount(
        self, board: Board, period: str, user_ids: Sequence[str]
    ) -> tuple[Moved, ...]:
        found = self._periods.get(board.id, {}).get(period)
        if found is None:
            raise NotFound(f"board '{board.id}' has no period '{period}'", code="unknown_period")
        now = self._clock()
        moved = []
        for user_id in dict.fromkeys(user_ids):
            if user_id not in self._users:
                continue
            done = self._recompute(board, found, user_id, now)
            if done is None:
                continue
            # The user's hidden bit from their status, not from the row (it may be what broke).
            table = self._standings[(board.id, period)]
            row = table[user_id]
            hidden = (row.hidden & EMPTY) | self._user_bit(user_id)
            table[user_id] = _Row(row.standing, row.updated, hidden)
            shown = row.standing if hidden == 0 else None
            moved.append(Moved(board.id, period, user_id, shown, row.standing.version))
        return tuple(moved)

    def _reversion(self, user_id: str, bit: int | None) -> tuple[Moved, ...]:
        """Every standing of the user in every period: a new version (a new name to show, or
        ``bit``: the user's hidden bit set or cleared); its time stays its events'."""
        name = self._users[user_id].name
        moved = []
        for (board, period), table in self._standings.items():
            row = table.get(user_id)
            if row is None:
                continue
            hidden = row.hidden if bit is None else (row.hidden & EMPTY) | bit
            standing = row.standing._replace(username=name, version=row.standing.version + 1)
            table[user_id] = _Row(standing, row.updated, hidden)
            shown = standing if hidden == 0 else None
            moved.append(Moved(board, period, user_id, shown, standing.version))
        return tuple(moved)

    def _user(self, user_id: str) -> _User:
        user = self._users.get(user_id)
        if user is None:
            raise NotFound(f"there is no user '{user_id}'", code="unknown_user")
        return user

    async def set_status(
        self, user_id: str, status: str, config: BoardsConfig, audit: Audit
    ) -> Moderated:
        user = self._user(user_id)
        if user.status == status:
            return Moderated(False)
        now = self._clock()
        was_shown = user.status == "active"
        user.status = status
        moved: tuple[Moved, ...] = ()
        if was_shown != (status == "active"):
            moved = self._reversion(user_id, 0 if status == "active" else HIDDEN_USER)
        self._record(audit, now)
        return Moderated(True, moved)

    async def rename(self, user_id: str, username: str | None, audit: Audit) -> Moderated:
        user = self._user(user_id)
        now = self._clock()
        if username is None:
            if not user.name_locked:
                return Moderated(False)
            user.name_locked = False
            self._record(audit, now)
            return Moderated(True)
        if user.name == username and user.name_locked:
            return Moderated(False)
        user.name, user.name_locked = username, True
        moved = self._reversion(user_id, None)
        self._record(audit, now)
        return Moderated(True, moved)

    async def adjust(self, update: ScoreUpdate, audit: Audit) -> Applied:
        applied = self._apply(replace(update, source="admin"))
        if not applied.replayed:
            self._record(audit, self._clock())
        return applied

    async def erase(self, user_id: str, erased_as: str, audit: Audit) -> list[tuple[str, str]]:
        self._user(user_id)
        pairs = []
        for (board, period), table in self._standings.items():
            if table.pop(user_id, None) is not None:
                pairs.append((board, period))
        for key in [k for k in self._events if k[0] == user_id]:
            for event in self._events.pop(key):
                self._by_id.pop(event.event_id, None)
            self._totals.pop(key, None)
        for key in [k for k in self._actions if k[0] == user_id]:
            del self._actions[key]
        del self._users[user_id]
        self._forget_deliveries(user_id)
        quoted, replacement = json.dumps(user_id), json.dumps(erased_as)
        for i, entry in enumerate(self._audit):
            text = json.dumps(entry.details, sort_keys=True)
            if entry.target == user_id or quoted in text:
                self._audit[i] = replace(
                    entry,
                    target=erased_as if entry.target == user_id else entry.target,
                    details=json.loads(text.replace(quoted, replacement)),
                )
        self._record(audit, self._clock())
        return pairs

    async def add_key(self, name: str, key_hash: str) -> None:
        if name in self._keys:
            raise Conflict(f"there is already a key named '{name}'")
        self._keys[name] = (key_hash, AdminKey(name, self._clock(), None, None))

    async def keys(self) -> list[AdminKey]:
        return sorted((key for _, key in self._keys.values()), key=lambda k: k.name)

    async def revoke_key(self, name: str) -> bool:
        found = self._keys.get(name)
        if found is None or found[1].revoked_at is not None:
            return False
        self._keys[name] = (found[0], replace(found[1], revoked_at=self._clock()))
        return True

    async def key_by_hash(self, key_hash: str) -> AdminKey | None:
        for name, (stored, key) in self._keys.items():
            if stored == key_hash:
                now = self._clock()
                if key.last_used_at is None or now - key.last_used_at >= KEY_TOUCH_INTERVAL:
                    key = replace(key, last_used_at=now)
                    self._keys[name] = (stored, key)
                return replace(key, key_hash=stored)
        return None

    @property
    def event_count(self) -> int:
        return self._count
