"""Verify and repair: every board's derived state (the standings table, per board and period,
and the rank index of each current period) recomputed from the ledger (the score events), and
compared with what is stored, or rebuilt from it while the service keeps serving.

**The rule, written once here** (:func:`tally`), independently of the stores' SQL: on a board,
a user's standing in a period comes from their events of the board's metric committed in the
period that count: not voided, and on a ``best`` board not an operator's adjustment. A ``sum``
adds them and is reached by the last one; a ``best`` keeps the better value and is reached by
the first event that reached it (an equal one does not replace it). A user who is hidden or
banned keeps their standing, not shown. A row none of whose events count is kept, marked empty
(``hidden`` bit 2), so it stands for nothing. An erased user has nothing anywhere.

**Differences are confirmed, because the service keeps writing.** A full pass reads a period's
rows, then its events, then the rank index, in chunks and without one snapshot, so a user
updated meanwhile can look wrong. Every user who looks wrong is then checked alone: their row,
their events, their row again (a row whose version did not move while their events were read
matches those events exactly: every event that changes a standing moves its version, in the
same transaction), then the index. An index difference is reported only when that check finds
it twice, ``settle`` seconds apart, with the row's version unchanged: an index a moment behind
its store (the write that follows a commit) is not a difference. A standings difference needs
no second look: the stable read already rules out an update in flight.

**Repair is per user, under the update path's serialization** (``AdminStore.recount``: the
SQLite writer; on PostgreSQL the table lock that moderation and configuration changes take),
not a snapshot and a replay: each confirmed user's standing is recomputed from the events in
the transaction that writes it, with a new version, so an update committed before it is
counted by it, one committed after it adds to the repaired row, and none is lost or counted
twice. The new version then goes to the rank index, which drops any older write still in
flight (and an update's newer one replaces it). Only the users that differ are touched: the
lock is held for ``REPAIR_CHUNK`` users at a time.

**The background check** (:class:`Watch`, in ``scoreboard serve``) does the same for a few
users a minute (``SCOREBOARD_CONSISTENCY_SAMPLE``), taken at random from the board's rows and
from its index, and counts what it confirms (``scoreboard_consistency_errors_total``). It also
takes up repairs made by ``scoreboard repair`` in another process into this process's own
rank indexes (an embedded server's): each repair is recorded in the audit with the users it
recounted, and the watch reads new audit entries every ``FOLLOW_INTERVAL`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from scoreboard import periods
from scoreboard.boards import Board, BoardsConfig
from scoreboard.errors import NotFound, Unavailable
from scoreboard.model import (
    Audit,
    LedgerEvent,
    Moved,
    RankedEntry,
    Standing,
    StoredRow,
    Top,
    rank_score,
)
from scoreboard.periods import Period
from scoreboard.ports import RankIndex, Store
from scoreboard.service import ScoreService, Served

log = logging.getLogger(__name__)

SETTLE = 1.0
"""Seconds between the two checks that confirm a difference."""
REPAIR_CHUNK = 100
"""Users recounted per store transaction (PostgreSQL holds updates off meanwhile)."""
AUDIT_USERS_MAX = 1000
"""Users named in one repair's audit entry; past that a server reloads the whole period."""
INDEX_PAGE = 1000
FOLLOW_INTERVAL = 2.0
_PERIODS_PAGE = 100
_STABLE_TRIES = 3

STANDINGS = "standings"
INDEX = "index"


class Tally(NamedTuple):
    """A user's standing as the events make it: the score, the event that reached it, and
    whether it is shown (its user is active)."""

    score: int
    reached: int
    shown: bool


@dataclass(frozen=True, slots=True)
class Difference:
    """One user whose derived state differs from the events: on ``board`` in ``period``, in
    ``store`` (``standings`` or ``index``), ``expected`` from the events, ``found`` there."""

    board: str
    period: str
    user_id: str
    store: str
    expected: str
    found: str

    def line(self) -> str:
        return (
            f"board={self.board} period={self.period} user={self.user_id} store={self.store}"
            f' expected="{self.expected}" found="{self.found}"'
        )


@dataclass
class Summary:
    boards: int = 0
    periods: int = 0
    rows: int = 0
    events: int = 0
    differences: int = 0
    repaired: int = 0

    def line(self) -> str:
        checked = (
            f"{self.boards} boards, {self.periods} periods, {self.rows} standings, "
            f"{self.events} events"
        )
        if self.differences:
            return f"{self.differences} differences in {checked}"
        return f"consistent: {checked}"


def tally(board: Board, events: Iterable[LedgerEvent], into: dict[str, Tally]) -> None:
    """Add ``events`` (in event id order) to ``into``: the standings they make on ``board``."""
    best = board.aggregate == "best"
    for event in events:
        if event.voided or (best and event.source != "user"):
            continue
        old = into.get(event.user_id)
        if old is None:
            into[event.user_id] = Tally(event.delta, event.event_id, event.user_shown)
        elif not best:
            into[event.user_id] = Tally(old.score + event.delta, event.event_id, event.user_shown)
        elif rank_score(event.delta, board.order) < rank_score(old.score, board.order):
            into[event.user_id] = Tally(event.delta, event.event_id, event.user_shown)


def _as_expected(board: Board, found: Tally | None) -> tuple[int, int, int, bool] | None:
    if found is None:
        return None
    return found.score, rank_score(found.score, board.order), found.reached, found.shown


def _as_stored(row: StoredRow | None) -> tuple[int, int, int, bool] | None:
    if row is None or row.hidden & 2:
        return None
    return row.score, row.rank_score, row.reached, row.hidden == 0


def _describe(value: tuple[int, int, int, bool] | None, board: Board) -> str:
    if value is None:
        return "nothing"
    score, key, reached, shown = value
    text = f"{score} by event {reached}"
    if key != rank_score(score, board.order):
        text += f", ranked as {-key if board.order == 'desc' else key}"
    return text if shown else text + ", hidden"


def row_difference(
    board: Board, period: str, user_id: str, expected: Tally | None, row: StoredRow | None
) -> Difference | None:
    """The standings row against the events (``None``: they agree)."""
    want, have = _as_expected(board, expected), _as_stored(row)
    if want == have:
        return None
    return Difference(
        board.id, period, user_id, STANDINGS, _describe(want, board), _describe(have, board)
    )


def index_difference(
    board: Board,
    period: str,
    user_id: str,
    expected: Tally | None,
    name: str | None,
    entry: RankedEntry | None,
) -> Difference | None:
    """The rank index's entry against the events (``name``: the user's name, ``None`` when
    it is not known; ``None``: they agree)."""
    want = None if expected is None or not expected.shown else expected.score
    if entry is None and want is None:
        return None
    if entry is not None and want == entry.score and name in (None, entry.username):
        return None
    expected_text = "absent" if want is None else f"{want}" + (f" as {name}" if name else "")
    found_text = "absent" if entry is None else f"{entry.score} as {entry.username}"
    return Difference(board.id, period, user_id, INDEX, expected_text, found_text)


class _UserState(NamedTuple):
    version: int | None
    differences: tuple[Difference, ...]


IndexOf = Callable[[Board, str], RankIndex | None]
"""The rank index that holds ``board``'s period ``period`` (its current one), if any."""
Announce = Callable[[Board, Top, str, int], Awaitable[None]]


class Consistency:
    """Verify and repair over a store (and the rank indexes ``index_of`` gives, if any)."""

    def __init__(
        self,
        store: Store,
        config: BoardsConfig,
        *,
        index_of: IndexOf | None = None,
        announce: Announce | None = None,
        settle: float = SETTLE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``announce(board, top, user_id, score)``: a repair changed a current top (to the
        live boards, through the bus)."""
        self.store = store
        self.config = config
        self.index_of = index_of or (lambda board, period: None)
        self.announce = announce
        self.settle = settle
        self._clock = clock

    # -- walking the boards ---------------------------------------------------------------

    def boards(self, only: str | None = None) -> list[Board]:
        if only is None:
            return list(self.config.boards.values())
        board = self.config.boards.get(only)
        if board is None:
            raise NotFound(
                f"there is no board '{only}' (boards: {', '.join(self.config.boards)})",
                code="unknown_board",
            )
        return [board]

    async def periods_of(self, board: Board) -> AsyncIterator[Period]:
        """Every recorded period of ``board``, newest first (archives included)."""
        before = None
        while True:
            page = await self.store.periods(board.id, limit=_PERIODS_PAGE, before=before)
            for summary in page:
                yield Period(summary.id, summary.starts_at, summary.ends_at)
            if len(page) < _PERIODS_PAGE:
                return
            before = page[-1].id

    async def current(self, board: Board) -> str | None:
        if board.reset == "manual":
            season = (await self.store.seasons()).get(board.id)
            return None if season is None else season.id
        return periods.period_at(board.reset, board.timezone, self._clock()).id

    # -- verify ---------------------------------------------------------------------------

    async def verify(
        self, board_id: str | None = None, summary: Summary | None = None
    ) -> AsyncIterator[Difference]:
        """Every confirmed difference of every board (or ``board_id``'s), every period."""
        summary = summary if summary is not None else Summary()
        for board in self.boards(board_id):
            summary.boards += 1
            current = await self.current(board)
            async for period in self.periods_of(board):
                summary.periods += 1
                index = self.index_of(board, period.id) if period.id == current else None
                async for difference in self.verify_period(board, period, index, summary):
                    yield difference

    async def verify_period(
        self, board: Board, period: Period, index: RankIndex | None, summary: Summary
    ) -> AsyncIterator[Difference]:
        suspects = await self._suspects(board, period, index, summary)
        for difference in await self.confirm(board, period.id, index, suspects):
            summary.differences += 1
            yield difference

    async def _suspects(
        self, board: Board, period: Period, index: RankIndex | None, summary: Summary
    ) -> list[str]:
        """The users whose rows (then events, then index entries), read in a full pass,
        disagree."""
        rows: dict[str, StoredRow] = {}
        async for chunk in self.store.stored(board.id, period.id):
            rows.update((row.user_id, row) for row in chunk)
        expected: dict[str, Tally] = {}
        async for events in self.store.ledger(board.metric, period.starts_at, period.ends_at):
            summary.events += len(events)
            tally(board, events, expected)
        summary.rows += len(rows)
        suspects = [
            user
            for user in rows.keys() | expected.keys()
            if row_difference(board, period.id, user, expected.get(user), rows.get(user))
        ]
        if index is not None:
            seen: set[str] = set()
            offset = 0
            while page := await index.page(offset, INDEX_PAGE):
                for entry in page:
                    seen.add(entry.user_id)
                    row = rows.get(entry.user_id)
                    name = None if row is None else row.username
                    if index_difference(
                        board, period.id, entry.user_id, expected.get(entry.user_id), name, entry
                    ):
                        suspects.append(entry.user_id)
                offset += len(page)
            suspects += [u for u, t in expected.items() if t.shown and u not in seen]
        return sorted(set(suspects))

    async def confirm(
        self, board: Board, period: str, index: RankIndex | None, suspects: Sequence[str]
    ) -> list[Difference]:
        """What each user's own check confirms: a standings difference at once (the check
        reads a stable row, see the module docstring); an index difference when a second check
        ``settle`` later finds it again, the row unchanged (not an index a moment behind)."""
        confirmed: list[Difference] = []
        pending: dict[str, _UserState] = {}
        for user in suspects:
            state = await self.check_user(board, period, user, index)
            confirmed += [d for d in state.differences if d.store == STANDINGS]
            if any(d.store == INDEX for d in state.differences):
                pending[user] = state
        if not pending:
            return confirmed
        await asyncio.sleep(self.settle)
        for user, before in pending.items():
            after = await self.check_user(board, period, user, index)
            if after.version == before.version:
                confirmed += [
                    d for d in after.differences if d.store == INDEX and d in before.differences
                ]
        return confirmed

    async def check_user(
        self, board: Board, period: str, user_id: str, index: RankIndex | None
    ) -> _UserState:
        """One user's row against their events (read between two reads of the row that find
        the same version), then their index entry."""
        bounds = await self.store.period(board.id, period)
        if bounds is None:
            return _UserState(None, ())
        for _ in range(_STABLE_TRIES):
            row = await self._row(board, period, user_id)
            mine: dict[str, Tally] = {}
            async for events in self.store.ledger(
                board.metric, bounds.starts_at, bounds.ends_at, user_id=user_id
            ):
                tally(board, events, mine)
            again = await self._row(board, period, user_id)
            version = None if row is None else row.version
            if version == (None if again is None else again.version):
                break
        else:
            return _UserState(None, ())  # moving too fast to tell: not a difference
        expected = mine.get(user_id)
        found = []
        difference = row_difference(board, period, user_id, expected, row)
        if difference is not None:
            found.append(difference)
        if index is not None:
            entry = await _entry_of(index, user_id)
            name = None if row is None else row.username
            difference = index_difference(board, period, user_id, expected, name, entry)
            if difference is not None:
                found.append(difference)
        return _UserState(version, tuple(found))

    async def _row(self, board: Board, period: str, user_id: str) -> StoredRow | None:
        async for chunk in self.store.stored(board.id, period, user_id=user_id):
            for row in chunk:
                return row
        return None

    # -- repair ---------------------------------------------------------------------------

    async def repair(
        self, board_id: str | None = None, summary: Summary | None = None, *, key: str = "cli"
    ) -> AsyncIterator[Difference]:
        """Find every difference as :meth:`verify` does and recount each user concerned from
        the events (see the module docstring); yields the differences repaired."""
        summary = summary if summary is not None else Summary()
        for board in self.boards(board_id):
            summary.boards += 1
            current = await self.current(board)
            async for period in self.periods_of(board):
                summary.periods += 1
                index = self.index_of(board, period.id) if period.id == current else None
                found = [d async for d in self.verify_period(board, period, index, summary)]
                users = sorted({d.user_id for d in found})
                if not users:
                    continue
                for start in range(0, len(users), REPAIR_CHUNK):
                    chunk = users[start : start + REPAIR_CHUNK]
                    moved = await self.store.recount(board, period.id, chunk)
                    if index is not None:
                        await self._take_up(board, period.id, index, chunk, moved)
                summary.repaired += len(users)
                details: dict[str, object] = {
                    "board": board.id,
                    "period": period.id,
                    "users": users[:AUDIT_USERS_MAX],
                    "more": max(0, len(users) - AUDIT_USERS_MAX),
                }
                await self.store.record(Audit(key, "repair", f"board:{board.id}", None, details))
                for difference in found:
                    yield difference

    async def _take_up(
        self,
        board: Board,
        period: str,
        index: RankIndex,
        users: Sequence[str],
        moved: Sequence[Moved],
    ) -> None:
        by_user = {m.user_id: m for m in moved}
        for user in users:
            done = by_user.get(user)
            if done is None:  # no row and nothing counts (an erased user's leftover)
                top = await index.forget(user)
                score = 0
            elif done.standing is None:
                top = await index.remove(period, user, done.version)
                score = 0
            else:
                top = await index.apply(period, done.standing)
                score = done.standing.score
            if top is not None and self.announce is not None:
                await self.announce(board, top, user, score)


async def _entry_of(index: RankIndex, user_id: str) -> RankedEntry | None:
    rank = await index.rank(user_id)
    if rank is None:
        return None
    page = await index.page(rank - 1, 1)
    if not page or page[0].user_id != user_id:  # moved between the two reads
        again = await index.rank(user_id)
        if again is None:
            return None
        page = await index.page(again - 1, 1)
    return next((e for e in page if e.user_id == user_id), None)


# -- the background check of `scoreboard serve` ---------------------------------------------


@dataclass
class Watch:
    """Checks ``per_minute`` users a minute, at random, on the boards ``service`` serves, and
    calls ``on_difference(n)`` with the differences it confirms; takes up repairs made by other
    processes into the indexes this process holds alone (``shared``: the boards whose index is
    shared, which the repair itself brought up to date)."""

    service: ScoreService
    store: Store
    per_minute: int
    on_difference: Callable[[int], None] = lambda n: None
    shared: Mapping[str, object] = field(default_factory=dict)
    settle: float = SETTLE
    follow_interval: float = FOLLOW_INTERVAL
    rng: random.Random = field(default_factory=random.Random)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _seen_audit: int | None = None

    async def start(self) -> None:
        if self.per_minute > 0:
            self._tasks.append(asyncio.create_task(self._sample_loop()))
        # Repairs recorded before this process built its indexes (from the store) are in them.
        with contextlib.suppress(Unavailable):  # else from the first audit page the loop reads
            self._seen_audit = await self._newest_audit()
        self._tasks.append(asyncio.create_task(self._follow_loop()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    def _consistency(self) -> Consistency | None:
        config = self.service.config
        if config is None:
            return None
        return Consistency(self.store, config, settle=self.settle)

    async def _sample_loop(self) -> None:
        while True:
            await asyncio.sleep(60.0 / self.per_minute)
            try:
                found = await self.sample()
            except Unavailable as exc:
                log.warning("consistency check postponed: %s", exc)
                continue
            except Exception:  # never let the loop die: the next sample tries again
                log.exception("consistency check failed")
                continue
            if found:
                self.on_difference(len(found))
                for difference in found:
                    log.error("derived state differs from the events: %s", difference.line())

    async def sample(self) -> list[Difference]:
        """Check one user, picked at random (a board, then its rows or its index), and return
        the confirmed differences."""
        consistency = self._consistency()
        served = list(self.service.boards.values())
        if consistency is None or not served:
            return []
        one = self.rng.choice(served)
        board, period, index = one.board, one.period.id, one.index
        user = None
        if self.rng.random() < 0.5:
            size = await index.size()
            if size:
                page = await index.page(self.rng.randrange(size), 1)
                user = page[0].user_id if page else None
        if user is None:
            count = await self.store.count(board.id, period)
            if not count:
                return []
            rows = await self.store.page(board.id, period, self.rng.randrange(count), 1)
            if not rows:
                return []
            user = rows[0].user_id
        found = await consistency.confirm(board, period, index, [user])
        if self.service.boards.get(board.id) is not one or one.period.id != period:
            return []  # a new period (or configuration) meanwhile: the index moved on
        return found

    async def _follow_loop(self) -> None:
        while True:
            await asyncio.sleep(self.follow_interval)
            try:
                await self.follow()
            except Unavailable as exc:
                log.warning("taking up repairs postponed: %s", exc)
            except Exception:
                log.exception("taking up repairs failed")

    async def _newest_audit(self) -> int:
        newest = await self.store.audit_page(limit=1)
        return newest[0].id if newest else 0

    async def follow(self) -> None:
        """Bring this process's own indexes up to the repairs recorded since the last call."""
        if self._seen_audit is None:
            self._seen_audit = await self._newest_audit()
            return
        entries = []
        before = None
        while True:
            page = await self.store.audit_page(limit=100, before=before)
            fresh = [e for e in page if e.id > self._seen_audit]
            entries += fresh
            if len(fresh) < len(page) or not page:
                break
            before = page[-1].id
        for entry in reversed(entries):
            self._seen_audit = max(self._seen_audit, entry.id)
            if entry.action != "repair":
                continue
            board_id, period = entry.details.get("board"), entry.details.get("period")
            served = self.service.boards.get(str(board_id))
            if served is None or served.period.id != period or board_id in self.shared:
                continue
            users = entry.details.get("users")
            names = [str(u) for u in users] if isinstance(users, list) else []
            if entry.details.get("more"):
                names = [
                    row.user_id
                    async for rows in self.store.stored(served.board.id, str(period))
                    for row in rows
                ]
            await self._reload(served, names)

    async def _reload(self, served: Served, users: Sequence[str]) -> None:
        period = served.period.id
        for user in users:
            row = None
            async for chunk in self.store.stored(served.board.id, period, user_id=user):
                row = chunk[0] if chunk else None
            if row is None:
                top = await served.index.forget(user)
            elif row.hidden:
                top = await served.index.remove(period, user, row.version)
            else:
                standing = _standing_of(row)
                top = await served.index.apply(period, standing)
            await self.service.publish(served, top, user, 0 if row is None else row.score)


def _standing_of(row: StoredRow) -> Standing:
    return Standing(row.user_id, row.username, row.score, row.version, row.reached)
