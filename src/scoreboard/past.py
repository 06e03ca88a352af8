"""Reading the past: a board as it stood at an instant ``at``, and one user's rank over time.

**The past as we know it now.** The board at ``at`` is recomputed from the ledger with the rule
of :func:`scoreboard.consistency.tally` (written once there): the events of the board's metric
committed in the period that held ``at``, from its start up to and including ``at``. So an event
voided since does not count (nor does a restored one's absence show), a user hidden or banned
since is not shown, an erased user does not exist, and names are today's. The period is one the
board recorded: an instant before the board's first period, or in an archive ``keep`` deleted,
reads as an empty board. An ``at`` after now reads as now: a client's clock a moment ahead gets
the latest board rather than an error.

**What it costs.** Each read walks the period's events up to ``at`` (the store's ledger walk,
by event id) and keeps one tally per user: time and memory in O(events of the period up to
``at``) and O(users of it). A trajectory walks each period it spans once, whatever its number
of points, plus O(users) each time the user's own standing moves. Nothing is stored for them,
so they need no migration and cannot go stale; ``docs/design.md`` (Reading the past) gives the
figures, and the checkpoints that would make a long period's reads fast.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from scoreboard import periods
from scoreboard.boards import Board
from scoreboard.consistency import Tally, tally
from scoreboard.errors import InvalidRequest
from scoreboard.model import Entry, RankedEntry, Standing, rank_key
from scoreboard.periods import Period
from scoreboard.ports import Store

POINTS_MAX = 1000
"""Most points a trajectory answers; a longer one asks for a coarser bucket."""
_MICROSECOND = timedelta(microseconds=1)
_HOUR = timedelta(hours=1)
_SEASONS_PAGE = 100

Bucket = Literal["hour", "day"]


@dataclass(frozen=True, slots=True)
class PastBoard:
    """A board's standings at ``at``: the period that held it (``None``: the board had none
    then, a manual board before its first season), and every shown user's tally."""

    at: datetime
    period: Period | None
    tallies: dict[str, Tally]
    order: str

    def key(self, user_id: str) -> tuple[int, int, str]:
        found = self.tallies[user_id]
        return rank_key(found.score, found.reached, user_id, self.order)

    def ranked(self, count: int) -> list[str]:
        """The first ``count`` users in rank order."""
        return heapq.nsmallest(count, self.tallies, key=self.key)

    def rank(self, user_id: str) -> int | None:
        """1-based; ``None`` for a user not on the board then."""
        if user_id not in self.tallies:
            return None
        mine = self.key(user_id)
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

    def __init__(self, store: Store, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.store = store
        self._clock = clock

    # -- the board at an instant --------------------------------------------------------------

    async def board_at(self, board: Board, at: datetime) -> PastBoard:
        """The board's shown standings as they stood at ``at`` (inclusive); a time after now
        reads as now (the latest the ledger knows, not a guess at the future)."""
        at = min(at, self._clock())
        period = await self.period_at(board, at)
        recorded = period is not None and await self.store.period(board.id, period.id) is not None
        tallies: dict[str, Tally] = {}
        if period is not None and recorded:
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
        past = await self.board_at(board, at)
        return past, await self._entries(past, 0, k)

    async def page(
        self, board: Board, at: datetime, offset: int, limit: int
    ) -> tuple[PastBoard, list[RankedEntry]]:
        past = await self.board_at(board, at)
        return past, await self._entries(past, offset, limit)

    async def user(self, board: Board, at: datetime, user_id: str) -> tuple[PastBoard, Entry, int]:
        """``None`` entry and rank 0 are never returned: a user not on the board then is
        ``LookupError`` (the caller's 404)."""
        past = await self.board_at(board, at)
        rank = past.rank(user_id)
        found = past.tallies.get(user_id)
        if rank is None or found is None:
            raise LookupError(user_id)
        name = await self._name(user_id)
        event = await self.store.event(found.reached)
        updated = at if event is None else event.at
        standing = Standing(user_id, name, found.score, 0, found.reached)
        return past, Entry(standing, updated), rank

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
