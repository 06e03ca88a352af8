"""Reading the past: a board as it stood at an instant ``at``, and one user's rank over time.

**The past as we know it now.** The board at ``at`` is recomputed from the ledger with the rule
of :func:`scoreboard.consistency.tally` (written once there): the events of the board's metric
committed in the period that held ``at``, from its start up to and including ``at``. So an event
voided since does not count (nor does a restored one's absence show), a user hidden or banned
since is not shown, an erased user does not exist, and names are today's. The period is one the
board recorded: an instant before the board's first period, or in an archive ``keep`` deleted,
reads as an empty board. An ``at`` after now reads as now: a client's clock a moment ahead gets
the latest board rather than an error.

**From a checkpoint** (:class:`~scoreboard.ports.Checkpoints`, written by the keeper every
interval: a board's first rows then), the top ranks at ``at`` are the checkpoint's rows plus the
events after it, and the users it cannot place are recounted from their own events
(:func:`from_checkpoint` says why that is the recount's answer). A read uses it only when it
settles what is asked (the top ``k``, or a user's rank among the ranks it settles); otherwise,
and for a page (whose answer counts every user) and a trajectory, the period is recounted.

**Backward from now** (:meth:`Past._backward`), one user's rank at ``at`` in the board's
current period is the present standings less what happened after ``at``: it costs the events
dated after ``at`` and the movers' own events before it, plus an index range count, and is
tried before the checkpoint when fewer than :data:`BACKWARD_MOST` events (and no more than
those before ``at``) are dated after ``at``.

**What a recount costs.** It walks the period's events up to ``at`` (the store's ledger walk,
by event id) and keeps one tally per user: time and memory in O(events of the period up to
``at``) and O(users of it). A trajectory walks each period it spans once, whatever its number
of points, plus O(users) each time the user's own standing moves. ``docs/design.md`` (Reading
the past) gives both paths' costs, and docs/benchmarks.md the figures.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from scoreboard import periods
from scoreboard.boards import Board
from scoreboard.consistency import Tally, tally
from scoreboard.errors import InvalidRequest
from scoreboard.model import (
    AuditEntry,
    Entry,
    Movers,
    RankedEntry,
    Replay,
    Standing,
    rank_key,
    rank_score,
)
from scoreboard.periods import Period
from scoreboard.ports import Checkpoints, Store

CHECKPOINT_SIZE = 1000
"""Rows a checkpoint keeps (the first in rank order): a read from it answers the top ranks
while fewer than ``CHECKPOINT_SIZE - 10`` of those users fell below its last row."""
CHECKPOINT_INTERVAL = 3600.0
"""Seconds between checkpoints: a read replays at most about this span of events."""
POINTS_MAX = 1000
"""Most points a trajectory answers; a longer one asks for a coarser bucket."""
BACKWARD_MOST = 100_000
"""Most events dated after ``at`` in its period for which a user's rank at ``at`` is read
backward from now (:meth:`Past.user`); past it, the checkpoint or the recount."""
_MICROSECOND = timedelta(microseconds=1)
_HOUR = timedelta(hours=1)
_SEASONS_PAGE = 100

Bucket = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class PastBoard:
    """A board's standings at ``at``: the period that held it (``None``: the board had none
    then, a manual board before its first season), and every shown user's tally; or, read from
    a checkpoint (``replayed``), what it settles: every shown user missing from ``tallies``
    ranks after ``bound`` (``None``: none is missing), except the ``pending`` ones, each with a
    lower bound of their ``rank_score``, who are yet to be recounted (:meth:`Past.settle`). So
    only the first :meth:`proven` ranks are known."""

    at: datetime
    period: Period | None
    tallies: dict[str, Tally]
    order: str
    bound: tuple[int, int, str] | None = None
    pending: dict[str, int] = field(default_factory=dict)
    replayed: bool = False
    """Read from a checkpoint rather than recounted."""
    backward: bool = False
    """Read backward from now for one user (:meth:`Past.user`): ``tallies`` hold only theirs."""

    def key(self, user_id: str) -> tuple[int, int, str]:
        found = self.tallies[user_id]
        return rank_key(found.score, found.reached, user_id, self.order)

    @property
    def complete(self) -> bool:
        """Every shown user is in ``tallies``."""
        return self.bound is None and not self.pending

    def _unknown_from(self) -> tuple[int, int, str] | None:
        """The least key a user not in ``tallies`` may have (``None``: there is none)."""
        floor = min(self.pending.values(), default=None)
        lowest = None if floor is None else (floor, -1, "")
        if self.bound is not None and (lowest is None or self.bound < lowest):
            lowest = self.bound
        return lowest

    def proven(self) -> int:
        """How many of the first ranks ``tallies`` settle."""
        lowest = self._unknown_from()
        if lowest is None:
            return len(self.tallies)
        return sum(1 for user in self.tallies if self.key(user) <= lowest)

    def ranked(self, count: int) -> list[str]:
        """The first ``count`` users in rank order (at most :meth:`proven` of them are the
        board's)."""
        return heapq.nsmallest(count, self.tallies, key=self.key)

    def rank(self, user_id: str) -> int | None:
        """1-based; ``None`` for a user not on the board then (or, from a checkpoint, not
        settled: unknown)."""
        if user_id not in self.tallies:
            return None
        mine = self.key(user_id)
        lowest = self._unknown_from()
        if lowest is not None and mine > lowest:
            return None
        return 1 + sum(1 for user in self.tallies if self.key(user) < mine)


@dataclass(frozen=True, slots=True)
class Point:
    """A trajectory's point: the bucket starting at ``at``, the user's score and rank as it
    ended (``None``: not on the board then)."""

    at: datetime
    score: int | None
    rank: int | None


class Past:
    """The past reads over a store (its ledger walk: ``AdminStore.ledger``)."""

    def __init__(
        self,
        store: Store,
        *,
        checkpoints: Checkpoints | None = None,
        backward: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        """``checkpoints``: where the keeper's checkpoints are (``None``: every read recounts
        its period); ``backward``: a user's rank may be read backward from now (``False``: only
        from a checkpoint or a recount, as the tests compare)."""
        self.store = store
        self.checkpoints = checkpoints
        self.backward = backward
        self._clock = clock

    # -- the board at an instant --------------------------------------------------------------

    async def board_at(self, board: Board, at: datetime) -> PastBoard:
        """The board's shown standings as they stood at ``at`` (inclusive); a time after now
        reads as now (the latest the ledger knows, not a guess at the future)."""
        return await self._board_at(board, at, fast=False)

    async def _board_at(self, board: Board, at: datetime, *, fast: bool) -> PastBoard:
        """``fast``: from a checkpoint when one serves (the answer may then be partial, see
        :class:`PastBoard`); otherwise, or when none does, the whole period recounted."""
        at = min(at, self._clock())
        period = await self.period_at(board, at)
        recorded = period is not None and await self.store.period(board.id, period.id) is not None
        tallies: dict[str, Tally] = {}
        if period is not None and recorded:
            if fast and self.checkpoints is not None:
                end = at + _MICROSECOND
                until = end if period.ends_at is None else min(end, period.ends_at)
                replay = await self.checkpoints.replay(board, period, until)
                if replay is not None:
                    replayed = from_checkpoint(board, replay)
                    if replayed is not None:
                        tallies, pending = replayed
                        shown = {user: found for user, found in tallies.items() if found.shown}
                        bound = replay.bound
                        return PastBoard(at, period, shown, board.order, bound, pending, True)
            await self._tally(board, period, at + _MICROSECOND, tallies)
        shown = {user: found for user, found in tallies.items() if found.shown}
        return PastBoard(at, period, shown, board.order)

    async def _tally(
        self, board: Board, period: Period, until: datetime, into: dict[str, Tally]
    ) -> None:
        end = until if period.ends_at is None else min(until, period.ends_at)
        async for events in self.store.ledger(board.metric, period.starts_at, end):
            tally(board, events, into)

    async def period_at(self, board: Board, at: datetime) -> Period | None:
        """The period of ``board`` that holds ``at``: computed for a clock reset, the
        recorded season for a manual board (``None`` before the first)."""
        if board.reset != "manual":
            return periods.period_at(board.reset, board.timezone, at)
        before = None
        while True:
            page = await self.store.periods(board.id, limit=_SEASONS_PAGE, before=before)
            for summary in page:
                season = Period(summary.id, summary.starts_at, summary.ends_at)
                if at in season:
                    return season
                if summary.starts_at is not None and summary.starts_at <= at:
                    return None  # newest first: older seasons end before this one starts
            if len(page) < _SEASONS_PAGE:
                return None
            before = page[-1].id

    async def top(self, board: Board, at: datetime, k: int) -> tuple[PastBoard, list[RankedEntry]]:
        past = await self._board_at(board, at, fast=True)
        if not past.complete:
            ranked = past.ranked(k)
            await self.settle(board, past, past.key(ranked[-1]) if len(ranked) == k else None)
            if past.proven() < k and not past.complete:
                past = await self.board_at(board, at)
        return past, await self._entries(past, 0, k)

    async def page(
        self, board: Board, at: datetime, offset: int, limit: int
    ) -> tuple[PastBoard, list[RankedEntry]]:
        """The page's answer counts the board's users, which a checkpoint knows only when it
        holds them all."""
        past = await self._board_at(board, at, fast=True)
        if past.bound is not None:
            past = await self.board_at(board, at)
        await self.settle(board, past, None)
        return past, await self._entries(past, offset, limit)

    async def user(self, board: Board, at: datetime, user_id: str) -> tuple[PastBoard, Entry, int]:
        """``None`` entry and rank 0 are never returned: a user not on the board then is
        ``LookupError`` (the caller's 404). Read backward from now when that serves
        (:meth:`_backward`), else from a checkpoint when it settles the rank, else recounted."""
        if self.backward:
            read = await self._backward(board, min(at, self._clock()), user_id)
            if read is not None:
                return read
        past = await self._board_at(board, at, fast=True)
        if not past.complete:
            if user_id in past.pending:
                await self._recount(board, past, [user_id])
            if user_id in past.tallies:
                await self.settle(board, past, past.key(user_id))
            if past.rank(user_id) is None and not past.complete:
                past = await self.board_at(board, at)
        rank = past.rank(user_id)
        found = past.tallies.get(user_id)
        if rank is None or found is None:
            raise LookupError(user_id)
        return past, await self._entry(user_id, found, at), rank

    async def _backward(
        self, board: Board, at: datetime, user_id: str
    ) -> tuple[PastBoard, Entry, int] | None:
        """The user's rank at ``at`` read backward from the present standings, in one snapshot
        (``AdminStore.backward``); ``None`` when this path does not serve: ``at`` outside the
        board's current period, more than :data:`BACKWARD_MOST` events dated after it, or
        fewer before it than after (the recount reads less).

        Why it is the recount's answer: the current period's standings are the tally of every
        event of the period (under today's voids and statuses: moderation recomputes them, an
        erasure deletes them), and the recount at ``at`` the tally of those dated up to ``at``.
        The two differ only for the users with an event dated after ``at`` (the movers, voided
        events included, an adjustment being an event): every other user's row is their
        standing at ``at``. So the users ahead at ``at`` are the shown rows before the user's
        key then (an index range count), less the movers among them, plus the movers whose
        own events up to ``at`` (recounted) put them before it. Not the other periods: a board
        removed and added back has its old periods' rows without the events meanwhile."""
        now = self._clock()
        period = await self.period_at(board, at)
        if period is None or period != await self.period_at(board, now):
            return None
        if await self.store.period(board.id, period.id) is None:
            return None
        order = board.order
        placed: dict[str, Tally] = {}
        then: dict[str, Tally] = {}

        def place(movers: Movers) -> tuple[int, int] | None:
            tally(board, movers.events, then)
            if user_id in movers.users:
                found = then.get(user_id)
            else:
                row = movers.rows.get(user_id)
                found = None
                if row is not None and row.hidden == 0:
                    score = -row.rank_score if order == "desc" else row.rank_score
                    found = Tally(score, row.reached, True)
            if found is None or not found.shown:
                return None
            placed[user_id] = found
            return rank_score(found.score, order), found.reached

        read = await self.store.backward(
            board, period, at + _MICROSECOND, user_id, BACKWARD_MOST, place
        )
        if read is None:
            return None
        movers, ahead = read
        mine = placed.get(user_id)
        if mine is None:
            raise LookupError(user_id)
        key = (rank_score(mine.score, order), mine.reached)
        for user in movers.users:
            row = movers.rows.get(user)
            if row is not None and row.hidden == 0 and (row.rank_score, row.reached) < key:
                ahead -= 1  # counted where it stands now, not where it stood
            found = then.get(user)
            if user != user_id and found is not None and found.shown:
                ahead += (rank_score(found.score, order), found.reached) < key
        past = PastBoard(at, period, {user_id: mine}, order, backward=True)
        return past, await self._entry(user_id, mine, at), ahead + 1

    async def _entry(self, user_id: str, found: Tally, at: datetime) -> Entry:
        name = await self._name(user_id)
        event = await self.store.event(found.reached)
        updated = at if event is None else event.at
        return Entry(Standing(user_id, name, found.score, 0, found.reached), updated)

    async def settle(
        self, board: Board, past: PastBoard, before: tuple[int, int, str] | None
    ) -> None:
        """Recount the pending users of ``past`` who may rank before the key ``before``
        (``None``: up to its bound, or all of them when it has none)."""
        limit = before or past.bound
        users = [u for u, floor in past.pending.items() if limit is None or (floor, -1, "") < limit]
        await self._recount(board, past, users)

    async def _recount(self, board: Board, past: PastBoard, users: list[str]) -> None:
        """The ``users``' tallies from their own events (an index range each), into ``past``."""
        period = past.period
        if not users or period is None:
            return
        end = past.at + _MICROSECOND
        until = end if period.ends_at is None else min(end, period.ends_at)
        found: dict[str, Tally] = {}
        if self.checkpoints is not None:  # one read for them all
            events = await self.checkpoints.events_of_users(
                board.metric, users, period.starts_at, until
            )
            tally(board, events, found)
        else:
            for user in users:
                async for chunk in self.store.ledger(
                    board.metric, period.starts_at, until, user_id=user
                ):
                    tally(board, chunk, found)
        for user in users:
            mine = found.get(user)
            if mine is not None and mine.shown:
                past.tallies[user] = mine
            past.pending.pop(user, None)

    async def _entries(self, past: PastBoard, offset: int, limit: int) -> list[RankedEntry]:
        users = past.ranked(offset + limit)[offset:]
        return [
            RankedEntry(offset + i + 1, user, await self._name(user), past.tallies[user].score)
            for i, user in enumerate(users)
        ]

    async def _name(self, user_id: str) -> str:
        profile = await self.store.profile(user_id)
        return user_id if profile is None else profile.username

    # -- a user's trajectory --------------------------------------------------------------------

    async def trajectory(
        self,
        board: Board,
        user_id: str,
        since: datetime | None,
        until: datetime | None,
        bucket: Bucket,
    ) -> list[Point]:
        """The user's score and rank at the end of each ``bucket`` (an hour or a day of the
        board's time zone) from the one holding ``since`` (default: the current period's start,
        or a day of hours or 30 days before ``until`` on a board that never resets) to the one
        holding ``until`` (default and at most: now). A hidden or banned user's reads as an
        unknown user's: no points. ``InvalidRequest`` past :data:`POINTS_MAX` points."""
        now = self._clock()
        end = now if until is None or until > now else until
        if since is None:
            current = await self.period_at(board, now)
            start = None if current is None else current.starts_at
            if start is None:
                start = end - (timedelta(days=1) if bucket == "hour" else timedelta(days=30))
        else:
            start = since
        if start >= end:
            return []
        starts = buckets(board.timezone, bucket, start, end)
        if len(starts) > POINTS_MAX:
            coarser = "bucket=day or " if bucket == "hour" else ""
            raise InvalidRequest(
                f"{len(starts)} {bucket}s from since to until: at most {POINTS_MAX} points; "
                f"ask for {coarser}a shorter window",
                code="too_many_points",
            )
        profile = await self.store.profile(user_id)
        if profile is None or profile.status != "active":
            return []
        # Each point is the board at its bucket's last instant (or just before ``until``).
        moments = [
            min(starts[i + 1] if i + 1 < len(starts) else _bucket_end(board, bucket, first), end)
            - _MICROSECOND
            for i, first in enumerate(starts)
        ]
        points: list[Point] = []
        i = 0
        while i < len(moments):
            period = await self.period_at(board, moments[i])
            j = i + 1
            while period is not None and j < len(moments) and moments[j] in period:
                j += 1
            recorded = period is not None and await self.store.period(board.id, period.id)
            if period is None or not recorded:
                points += [Point(at, None, None) for at in starts[i:j]]
            else:
                found = await self._walk(board, period, user_id, moments[i:j])
                points += [Point(at, *f) for at, f in zip(starts[i:j], found, strict=True)]
            i = j
        return points

    async def _walk(
        self, board: Board, period: Period, user_id: str, moments: list[datetime]
    ) -> list[tuple[int | None, int | None]]:
        """The user's (score, rank) at each of ``moments`` (ascending, all in ``period``), from
        one walk of the period's events: the board is tallied in event id order, and the count
        of users ahead of the user kept up event by event (recounted only when the user's own
        standing moves). An event committed at a time earlier than events with lower ids (a
        clock set back, concurrent commits) belongs to points already taken: those points are
        recounted alone, as :meth:`board_at` would."""
        order = board.order
        tallies: dict[str, Tally] = {}
        mine: tuple[int, int, str] | None = None
        ahead = 0
        figures: list[tuple[int | None, int | None]] = []
        late: set[int] = set()

        def key(user: str) -> tuple[int, int, str] | None:
            found = tallies.get(user)
            if found is None or not found.shown:
                return None
            return rank_key(found.score, found.reached, user, order)

        def snapshot() -> None:
            found = tallies.get(user_id)
            score = None if found is None or mine is None else found.score
            figures.append((score, None if mine is None else ahead + 1))

        until = moments[-1] + _MICROSECOND
        async for events in self.store.ledger(board.metric, period.starts_at, until):
            for event in events:
                at = event.at if event.at is not None else period.starts_at
                first = 0 if at is None else bisect.bisect_left(moments, at)
                while len(figures) < min(first, len(moments)):
                    snapshot()
                if first < len(figures):
                    late.update(range(first, len(figures)))
                if event.user_id == user_id:
                    tally(board, (event,), tallies)
                    mine = key(user_id)
                    if mine is not None:
                        ahead = sum(
                            1 for u in tallies if u != user_id and (k := key(u)) and k < mine
                        )
                    continue
                old = key(event.user_id)
                tally(board, (event,), tallies)
                new = key(event.user_id)
                if mine is not None and old != new:
                    ahead += (new is not None and new < mine) - (old is not None and old < mine)
        while len(figures) < len(moments):
            snapshot()
        for index in sorted(late):
            past = await self.board_at(board, moments[index])
            found = past.tallies.get(user_id)
            figures[index] = (None if found is None else found.score, past.rank(user_id))
        return figures


RECOUNTED_ACTIONS = frozenset({"void", "restore", "hide", "unhide", "ban", "unban"})
"""Audit actions that change what a named user's events count for, or whether the user is
shown: a read from a checkpoint older than one recounts that user (the store names them)."""
HARMLESS_ACTIONS = frozenset({"rename", "unlock_name", "adjust", "rollover", "erase"})
"""Audit actions that leave every checkpoint true: names are read at answer time, an
adjustment is an event like any, a rollover changes no event, and an erasure deletes the
user's checkpoint rows with everything else of theirs. Any action in neither set is let
through only by its prefix below (a webhook's); any other (a ``repair``: the checkpoint may
have copied what it repaired; one added later) makes the read recount its period."""
_HARMLESS_PREFIXES = ("webhook_",)


def from_checkpoint(board: Board, replay: Replay) -> tuple[dict[str, Tally], dict[str, int]] | None:
    """The tallies a read gets from ``replay`` (the checkpoint's rows and the events after it;
    the users it recounted from their own events), and the users still pending, each with a
    lower bound of their ``rank_score``; ``None`` when an audit entry after the checkpoint is one
    this code cannot account for.

    Why it is the recount's answer: a user's tally over a set of events is the same whatever
    way the set is split (a sum adds, a best keeps the better value and, at equal value, the
    lower event id), and the period's events up to the instant are exactly the checkpoint's
    (every event through ``through``, all dated up to ``at``) and the rest: those dated after
    ``at`` (``after``) and those committed after ``through`` but dated before ``at`` (whose
    users are recounted). A row's user whose events or status an audit entry changed is
    recounted too; every other row is as the checkpoint found it, plus its ``after`` events. A
    user with neither a row nor a later event ranked after the checkpoint's last row then, and
    still does. A user with later events but no row had, at the checkpoint, no events (then the
    later ones are all) or a ``rank_score`` of at least the bound's: with the later ones, a sum
    is at least the bound's (or 0) plus theirs, a best at least the better of the bound's and
    theirs. Such a user is pending with that lower bound; only those it leaves in the way of an
    answer are recounted (:meth:`Past.settle`)."""
    if not all(_accounted(entry) for entry in replay.audit):
        return None
    tallies: dict[str, Tally] = {
        row.user_id: Tally(row.score, row.reached, row.hidden & 1 == 0)
        for row in replay.rows
        if row.user_id not in replay.recounted
    }
    later: dict[str, Tally] = {}
    tally(
        board,
        (e for e in replay.after if e.user_id not in replay.recounted and e.user_id not in tallies),
        later,
    )
    tally(board, (e for e in replay.after if e.user_id in tallies), tallies)
    tally(board, (e for e in replay.own if e.user_id in replay.recounted), tallies)
    pending: dict[str, int] = {}
    if replay.bound is None:  # the checkpoint held every user: the later events are all theirs
        tallies.update(later)
    else:
        floor = replay.bound[0]
        for user, found in later.items():
            key = rank_score(found.score, board.order)
            pending[user] = min(floor, 0) + key if board.aggregate == "sum" else min(floor, key)
    return tallies, pending


def _accounted(entry: AuditEntry) -> bool:
    return (
        entry.action in RECOUNTED_ACTIONS
        or entry.action in HARMLESS_ACTIONS
        or entry.action.startswith(_HARMLESS_PREFIXES)
    )


def buckets(timezone: str, bucket: Bucket, since: datetime, until: datetime) -> list[datetime]:
    """The starts (UTC) of the hours or days of ``timezone`` that meet ``[since, until)``,
    stopping one past :data:`POINTS_MAX` (enough to refuse). A day is a ``daily`` period
    (its first instant as :mod:`scoreboard.periods` defines it); an hour starts where the wall
    clock shows a whole hour."""
    found: list[datetime] = []
    moment = _bucket_start(timezone, bucket, since)
    while moment < until and len(found) <= POINTS_MAX:
        found.append(moment)
        if bucket == "day":
            following = periods.period_at("daily", timezone, moment).ends_at
            assert following is not None
            moment = following
        else:  # at least an hour on (a zone whose offset moves by half an hour floors back)
            following = _bucket_start(timezone, bucket, moment + _HOUR)
            moment = following if following > moment else moment + _HOUR
    return found


def _bucket_start(timezone: str, bucket: Bucket, moment: datetime) -> datetime:
    if bucket == "day":
        start = periods.period_at("daily", timezone, moment).starts_at
        assert start is not None
        return start
    local = moment.astimezone(periods.zone(timezone))
    return local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def _bucket_end(board: Board, bucket: Bucket, start: datetime) -> datetime:
    if bucket == "day":
        end = periods.period_at("daily", board.timezone, start).ends_at
        assert end is not None
        return end
    return _bucket_start(board.timezone, bucket, start + _HOUR)
