"""The use cases: apply a score update to every board of its metric, read any board and period.

The service owns the order of one update: durable commit first (the store moves the user on every
board the metric feeds, in one transaction), then each board's rank index, then (only for a board
whose index reports that its top changed, with its new ``seq``) a board event to that board's
live board and to the bus. It also owns each board's current period in this process: a new
period (by the clock, or a manual rollover) empties the board's index and announces
``PERIOD_STARTED`` with the board's next ``seq``. It imports no web framework, database driver
or Redis client.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from scoreboard import periods, webhooks
from scoreboard.boards import NAME_PATTERN, Board, BoardsConfig, Metric
from scoreboard.broadcast import LiveBoard
from scoreboard.errors import Conflict, InvalidRequest, NotFound, Unavailable
from scoreboard.events import BoardChanged, EncodedBoard, StandingMoved
from scoreboard.model import (
    BUCKETS,
    DEFAULT_BOARD,
    TOP_K,
    USER_ID_RULE,
    Applied,
    BoardResult,
    BoardStanding,
    Entry,
    ExportRow,
    HistoryPoint,
    HistoryQuery,
    PeriodSummary,
    RankedEntry,
    ScoreEvent,
    ScoreUpdate,
    Standing,
    Top,
    UpdateResult,
    UserProfile,
    is_valid_action_id,
    is_valid_delta,
    is_valid_user_id,
)
from scoreboard.periods import Period
from scoreboard.ports import Bus, RankIndex, ScoreStore

log = logging.getLogger(__name__)
_NAME_RE = re.compile(NAME_PATTERN)

PAGE_MAX = 100
RADIUS_MAX = 50
HISTORY_MAX = 1000
PERIODS_MAX = 100

IndexFactory = Callable[[Board, LiveBoard], RankIndex]
"""Makes the rank index of a board (given its live board, whose ``seq`` a shared index must
never fall below)."""


@dataclass
class Served:
    """One board this process serves: its definition, its current period, its rank index
    (of that period) and its live board."""

    board: Board
    period: Period
    index: RankIndex
    live: LiveBoard


class ScoreService:
    """Apply updates and serve the boards of a configuration.

    ``start`` must run before anything else: it takes each board's current period, rebuilds its
    rank index from the store (the store is the truth; the index is derived) and puts its top on
    the board's live board. ``reconfigure`` takes a new configuration while serving.
    """

    def __init__(
        self,
        store: ScoreStore,
        bus: Bus,
        indexes: IndexFactory,
        *,
        default_board: str = DEFAULT_BOARD,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_fan_out: Callable[[float, int], None] | None = None,
    ) -> None:
        """``on_fan_out``: every live board's fan-out observer (metrics)."""
        self.store = store
        self._on_fan_out = on_fan_out
        self.bus = bus
        self.default_board = default_board
        self._indexes = indexes
        self._clock = clock
        self.config: BoardsConfig | None = None
        self.boards: dict[str, Served] = {}
        self._lives: dict[str, LiveBoard] = {}
        self._starting: dict[str, asyncio.Lock] = {}
        """Per board: held while a new period is taken up, so it is taken up once."""
        self.started = False
        """Whether :meth:`start` has built the indexes (readiness)."""
        self.notify: Callable[[webhooks.Notice], Awaitable[None]] | None = None
        """Told of every webhook event this process comes to know (the composition root
        queues it in the outbox): a top-10 entry or exit once the index applied the change
        that made it, a period closed once this process started the next. It must not raise."""

    # -- boards -----------------------------------------------------------------------------

    def live_board(self, board_id: str) -> LiveBoard:
        """The live board of ``board_id``, made empty when first asked for: the composition
        root makes it before the board's index, which reads its ``seq``."""
        live = self._lives.get(board_id)
        if live is None:
            live = self._lives[board_id] = LiveBoard(BoardChanged(board_id, 0, "", 0, ()))
            live.on_fan_out = self._on_fan_out
        return live

    @property
    def live(self) -> LiveBoard:
        """The default board's live board (the seed's channel)."""
        return self.live_board(self.default_board)

    def served(self, board_id: str) -> Served:
        served = self.boards.get(board_id)
        if served is None:
            raise NotFound(f"there is no board '{board_id}'", code="unknown_board")
        return served

    async def start(self, config: BoardsConfig) -> None:
        if config.boards.get(self.default_board) is None:
            raise ValueError(
                f"the default board '{self.default_board}' is not in the boards configuration"
            )
        await self.reconfigure(config)
        self.started = True

    async def reconfigure(self, config: BoardsConfig) -> None:
        """Serve ``config``'s boards: new ones are built from the store, removed ones are no
        longer served (their sockets are told to go), changed titles and ``keep`` apply."""
        seasons = await self.store.seasons()
        for board_id in [b for b in self.boards if b not in config.boards]:
            served = self.boards.pop(board_id)
            served.live.retire()
            log.info("board no longer served", extra={"board": board_id})
        for board in config.boards.values():
            known = self.boards.get(board.id)
            if known is not None:
                known.board = board
                continue
            period = self._period_of(board, seasons)
            if period is None:
                log.warning("manual board without a season; not served", extra={"board": board.id})
                continue
            live = self.live_board(board.id)
            index = self._indexes(board, live)
            unclosed = await self._ended_unseen(board, period)
            await self.store.start_period(board.id, period)
            self.boards[board.id] = served = Served(board, period, index, live)
            await self.rebuild(served)
            if unclosed is not None:
                log.info(
                    "period ended while no process served the board",
                    extra={"board": board.id, "period": unclosed, "current": period.id},
                )
                await self._closed(board.id, unclosed)
        self.config = config

    async def _ended_unseen(self, board: Board, period: Period) -> str | None:
        """The period of a clock-reset ``board`` that ended while no process served it: the
        newest one recorded when that is not ``period`` (the current one). Any process that
        served the board at its boundary recorded the next period and said the last one closed,
        so this is exactly the case no process saw."""
        if board.reset in ("never", "manual"):
            return None  # manual: `boards rollover` says so itself (period_closed_notice)
        recorded = await self.store.periods(board.id, limit=1)
        if not recorded or recorded[0].id == period.id:
            return None
        return recorded[0].id

    async def _closed(self, board_id: str, period_id: str) -> None:
        if self.notify is not None:
            notice = await period_closed_notice(self.store, board_id, period_id, self._clock())
            await self.notify(notice)

    def _period_of(self, board: Board, seasons: Mapping[str, Period]) -> Period | None:
        if board.reset == "manual":
            return seasons.get(board.id)
        return periods.period_at(board.reset, board.timezone, self._clock())

    async def rebuild(self, served: Served) -> int:
        """Load every standing of the board's current period from the store into its index;
        returns how many. The new top reaches the live board."""
        # One load of everything: an index can build from a whole list far faster than it can
        # insert chunk after chunk (a sort instead of n ordered inserts).
        standings: list[Standing] = []
        async for chunk in self.store.iter_standings(served.board.id, served.period.id):
            standings.extend(chunk)
        await served.index.load(served.period.id, standings)
        top = await served.index.board()
        served.live.offer(BoardChanged(served.board.id, top.seq, "", 0, top.top, period=top.period))
        log.info(
            "rank index built",
            extra={"users": len(standings), "board": served.board.id, "period": top.period},
        )
        return len(standings)

    async def start_period(self, board_id: str, period: Period) -> bool:
        """Make ``period`` the board's current one in this process (its index emptied, then
        loaded with whatever the store already holds of it) and announce ``PERIOD_STARTED``.
        ``False`` when it already was current. The previous period becomes an archive (pruned
        to the board's ``keep``).

        The announcement comes before anything else of the new period: updates committed in it
        meanwhile wait (in ``_catch_up_period``) until it is made, and those this process
        committed in it before are loaded after it, announced as a change of its own."""
        served = self.boards.get(board_id)
        if served is None:
            return False
        async with self._starting.setdefault(board_id, asyncio.Lock()):
            if served.period.id == period.id:
                return False
            previous = served.period
            await self.store.start_period(board_id, period)
            top = await served.index.start_period(period.id)
            # Current from here on, with no await before the announcement: nothing of the new
            # period can be published ahead of it.
            served.period = period
            event = BoardChanged(
                board_id, top.seq, "", 0, top.top, period=period.id, previous=previous.id
            )
            served.live.offer(event)
            await self.bus.publish(event)
            # Updates committed in the new period before this process took it up (its timer
            # a moment late, a rollover made elsewhere) are in the store: load them, so the
            # index is whole.
            standings: list[Standing] = []
            async for chunk in self.store.iter_standings(board_id, period.id):
                standings.extend(chunk)
            if standings:
                await served.index.load(period.id, standings)
                loaded = await served.index.board()
                if loaded.seq > top.seq:
                    change = BoardChanged(board_id, loaded.seq, "", 0, loaded.top, period=period.id)
                    served.live.offer(change)
                    await self.bus.publish(change)
        log.info(
            "period started",
            extra={"board": board_id, "period": period.id, "previous": previous.id},
        )
        # Every process that starts the period says so; the outbox keeps one (its key).
        await self._closed(board_id, previous.id)
        if served.board.keep is not None:
            deleted = await self.store.prune(board_id, served.board.keep)
            if deleted:
                log.info("archives deleted", extra={"board": board_id, "periods": deleted})
        return True

    async def roll_clock(self) -> None:
        """Start the current period of every clock-reset board whose period has ended."""
        now = self._clock()
        for served in list(self.boards.values()):
            board = served.board
            if board.reset in ("never", "manual") or now in served.period:
                continue
            await self.start_period(board.id, periods.period_at(board.reset, board.timezone, now))

    async def roll_seasons(self) -> None:
        """Take up manual rollovers made by any process (``scoreboard boards rollover``)."""
        seasons = await self.store.seasons()
        for served in list(self.boards.values()):
            season = seasons.get(served.board.id)
            if served.board.reset == "manual" and season is not None:
                await self.start_period(served.board.id, season)

    async def rollover(self, board_id: str) -> tuple[Period, Period]:
        """Start the next season of the manual board ``board_id`` now."""
        served = self.served(board_id)
        if served.board.reset != "manual":
            raise Conflict(
                f"board '{board_id}' resets by itself ({served.board.reset}); only a manual "
                "board is rolled over",
                code="not_manual",
            )
        closed, opened = await self.store.rollover(served.board)
        await self.start_period(board_id, opened)
        return closed, opened

    def next_boundary(self) -> datetime | None:
        """The soonest end of a clock-reset board's current period."""
        ends = [
            s.period.ends_at
            for s in self.boards.values()
            if s.board.reset not in ("never", "manual") and s.period.ends_at is not None
        ]
        return min(ends, default=None)

    def current_board(self, board_id: str | None = None) -> EncodedBoard:
        return self.live_board(board_id or self.default_board).current

    # -- updates ----------------------------------------------------------------------------

    def metric(self, name: str) -> Metric:
        if _NAME_RE.fullmatch(name) is None:
            raise InvalidRequest(f"metric must be {NAME_PATTERN}", code="invalid_metric")
        metric = None if self.config is None else self.config.metrics.get(name)
        if metric is None:
            raise InvalidRequest(f"there is no metric '{name}'", code="unknown_metric")
        return metric

    def validate(self, update: ScoreUpdate) -> Metric:
        """The update's metric, or ``InvalidRequest`` unless the update is well formed and in
        its metric's range."""
        self.check_user_id(update.user_id)
        metric = self.metric(update.metric)
        if not is_valid_delta(update.delta, metric.min_delta, metric.max_delta):
            raise InvalidRequest(
                f"score_delta must be a non-zero integer from {metric.min_delta} to "
                f"{metric.max_delta}",
                code="invalid_score_delta",
            )
        if update.action_id is not None and not is_valid_action_id(update.action_id):
            raise InvalidRequest(
                "action_id must be 1-128 characters without control or invisible formatting "
                "characters",
                code="invalid_action_id",
            )
        return metric

    async def already_applied(self, update: ScoreUpdate) -> bool:
        """Whether ``update``'s action was applied already (a store read; for the velocity
        limit's refusals only)."""
        if update.action_id is None:
            return False
        return await self.store.action_delta(update.user_id, update.action_id) is not None

    async def update(self, update: ScoreUpdate) -> UpdateResult:
        """Apply an authorized update. Returns after the commit, with the user's place on
        every board its metric feeds.

        A retry of an applied action returns the user's current figures and adds nothing.
        Raises ``InvalidRequest``, ``ActionConflict``, ``ScoreOutOfRange`` or (when the store
        cannot commit) ``Unavailable``; on any of them nothing has changed. Once the store has
        committed, the update is answered even if a rank index is down: the rank then comes
        from the store.
        """
        self.validate(update)
        return await self.placed(await self.store.apply(update))

    async def placed(self, applied: Applied) -> UpdateResult:
        """After a commit (an update's, or an operator's adjustment): bring each board's index
        up to the user's standing, announce any new top, and say where the user stands."""
        # Committed: from here on the answer is a 200, whatever happens to derived state.
        results = []
        for moved in applied.boards:
            served = self.boards.get(moved.board)
            if served is None:  # a board this process does not serve (yet): no rank here
                results.append(BoardResult(moved.board, moved.period, _score(moved), None))
                continue
            try:
                rank = await self._index(served, moved, applied.replayed)
            except Unavailable as exc:
                log.warning(
                    "rank index unavailable after a commit; ranking from the store: %s",
                    exc,
                    extra={"user_id": applied.user_id, "board": moved.board},
                )
                rank = await self._rank_in_store(served.board, moved)
            results.append(BoardResult(moved.board, moved.period, _score(moved), rank))
        return UpdateResult(applied.user_id, tuple(results), replayed=applied.replayed)

    async def _index(self, served: Served, moved: BoardStanding, replayed: bool) -> int | None:
        """Bring the board's index up to the standing (publishing a change) and return the
        rank."""
        standing = moved.standing
        if standing is None:
            return None
        if moved.period != served.period.id:
            await self._catch_up_period(served, moved.period)
        if moved.period != served.period.id:  # an older period: an archive by now
            return None if not moved.shown else await self._rank_in_store(served.board, moved)
        index = served.index
        if not moved.shown:  # a hidden user's update counts, but not on the board
            top = await index.remove(moved.period, standing.user_id, standing.version)
            await self.publish(served, top, standing.user_id, standing.score)
            return None
        rank = None
        if moved.changed and not replayed:
            top, before, rank, stored = await index.apply_and_move(moved.period, standing)
            await self.publish(served, top, standing.user_id, standing.score)
            if stored:
                await self.bus.publish(
                    StandingMoved(
                        served.board.id,
                        moved.period,
                        standing.user_id,
                        standing.username,
                        standing.score,
                        before,
                        rank,
                    )
                )
        if rank is None:
            rank = await index.rank(standing.user_id)
        if rank is None:  # the index lost the user (a derived store was flushed): heal it
            await index.apply(moved.period, standing)
            rank = await index.rank(standing.user_id)
        return rank if rank is not None else await self._rank_in_store(served.board, moved)

    async def unsettled(self, served: Served, period: str) -> None:
        """Something moved on the board that no single move describes (an operator's action):
        every ``/ws`` view of it is read again, in every process."""
        await self.bus.publish(StandingMoved(served.board.id, period, "", "", 0, None, None))

    async def publish(self, served: Served, top: Top | None, user_id: str, score: int) -> None:
        """A new top of the board (``None``: the write changed nothing shown): to this
        process's sockets at once, and to the other processes over the bus."""
        if top is None:
            return
        event = BoardChanged(served.board.id, top.seq, user_id, score, top.top, period=top.period)
        previous = served.live.current.event
        served.live.offer(event)
        await self.bus.publish(event)
        if self.notify is not None and previous.period == top.period and previous.seq < top.seq:
            # Against the newest top this process knew: the one before this change, unless
            # another process changed the board in between and its change has not arrived yet
            # (docs/webhooks.md, "Events").
            for notice in webhooks.top_changes(
                served.board.id, top.period, top.seq, previous.rankings, top.top, self._clock()
            ):
                await self.notify(notice)

    async def _catch_up_period(self, served: Served, period_id: str) -> None:
        """The store committed in a period this process has not started yet (its timer is a
        moment late, or another process rolled a manual board over): start it now."""
        board = served.board
        if board.reset == "manual":
            season = (await self.store.seasons()).get(board.id)
            if season is not None and season.id == period_id:
                await self.start_period(board.id, season)
            return
        period = periods.period_bounds(board.reset, board.timezone, period_id)
        current = served.period
        if (
            current.starts_at is not None
            and period.starts_at is not None
            and period.starts_at > current.starts_at
        ):
            await self.start_period(board.id, period)

    async def _rank_in_store(self, board: Board, moved: BoardStanding) -> int | None:
        if moved.standing is None:
            return None
        return await self.store.rank_of(board.id, moved.period, board.order, moved.standing)

    # -- reads ------------------------------------------------------------------------------

    async def period_of(self, board_id: str, period_id: str | None) -> tuple[Served, Period, bool]:
        """The served board, the period asked for (its current one by default) and whether
        that is the current one. ``InvalidRequest`` for an id of the wrong form for the
        board, ``NotFound`` for one it never had."""
        served = self.served(board_id)
        if period_id is None or period_id == served.period.id:
            return served, served.period, True
        canonical = periods.parse_period_id(served.board.reset, period_id)
        period = await self.store.period(board_id, canonical)
        if period is None:
            raise NotFound(f"board '{board_id}' has no period '{canonical}'", code="unknown_period")
        return served, period, period.id == served.period.id

    async def top(
        self, board_id: str, period_id: str | None = None, k: int = TOP_K
    ) -> tuple[Period, tuple[RankedEntry, ...]]:
        served, period, current = await self.period_of(board_id, period_id)
        if current:
            return period, await served.index.top(k)
        return period, _ranked(await self.store.page(board_id, period.id, 0, k), 0)

    async def page(
        self, board_id: str, period_id: str | None, offset: int, limit: int
    ) -> tuple[Period, tuple[RankedEntry, ...], int]:
        """A page of the board and the number of entries on it."""
        if offset < 0 or not 1 <= limit <= PAGE_MAX:
            raise InvalidRequest(f"offset must be >= 0 and limit 1-{PAGE_MAX}")
        served, period, current = await self.period_of(board_id, period_id)
        entries = await self._slice(served, period, current, offset, limit)
        if current:
            return period, entries, await served.index.size()
        return period, entries, await self.store.count(board_id, period.id)

    async def user(
        self, board_id: str, period_id: str | None, user_id: str
    ) -> tuple[Period, Entry, int]:
        """A user's entry and rank; ``NotFound`` for a user with no entry there."""
        self.check_user_id(user_id)
        served, period, current = await self.period_of(board_id, period_id)
        entry, rank = await self._placed(served, period, current, user_id)
        return period, entry, rank

    async def around(
        self, board_id: str, period_id: str | None, user_id: str, radius: int
    ) -> tuple[Period, int, tuple[RankedEntry, ...]]:
        """The user's rank and the entries from ``radius`` above to ``radius`` below it."""
        if not 1 <= radius <= RADIUS_MAX:
            raise InvalidRequest(f"radius must be 1-{RADIUS_MAX}")
        self.check_user_id(user_id)
        served, period, current = await self.period_of(board_id, period_id)
        _, rank = await self._placed(served, period, current, user_id)
        start = max(0, rank - 1 - radius)
        entries = await self._slice(served, period, current, start, rank + radius - start)
        return period, rank, entries

    async def _placed(
        self, served: Served, period: Period, current: bool, user_id: str
    ) -> tuple[Entry, int]:
        """The user's entry and rank in the period: the index's rank for the current one, the
        store's for an archive (and for a user the index has not caught up with yet)."""
        board = served.board
        entry = await self.store.entry(board.id, period.id, user_id)
        rank = None
        if entry is not None:
            if current:
                rank = await served.index.rank(user_id)
            if rank is None:
                rank = await self.store.rank_of(board.id, period.id, board.order, entry.standing)
        if entry is None or rank is None:
            raise NotFound(f"no score for user '{user_id}'", code="unknown_user")
        return entry, rank

    async def _slice(
        self, served: Served, period: Period, current: bool, offset: int, limit: int
    ) -> tuple[RankedEntry, ...]:
        """``limit`` entries from rank ``offset + 1``: the index's for the current period, the
        store's for an archive."""
        if current:
            return await served.index.page(offset, limit)
        rows = await self.store.page(served.board.id, period.id, offset, limit)
        return _ranked(rows, offset)

    async def export(
        self, board_id: str, period_id: str | None
    ) -> tuple[Period, AsyncIterator[list[ExportRow]]]:
        """The period (the current one by default) and its rows in rank order, from the store,
        in chunks (``scoreboard.exports`` writes them)."""
        _, period, _ = await self.period_of(board_id, period_id)
        return period, self.store.iter_ranked(board_id, period.id)

    async def periods(
        self, board_id: str, *, limit: int, before: str | None
    ) -> list[PeriodSummary]:
        served = self.served(board_id)
        if not 1 <= limit <= PERIODS_MAX:
            raise InvalidRequest(f"limit must be 1-{PERIODS_MAX}")
        if before is not None and not periods.has_period_form(served.board.reset, before):
            periods.parse_period_id(served.board.reset, before)  # raises the 400, worded
            raise periods.InvalidPeriodId(f"'{before}' is not a period id of this board")
        return await self.store.periods(board_id, limit=limit, before=before)

    async def profile(self, user_id: str) -> UserProfile | None:
        self.check_user_id(user_id)
        return await self.store.profile(user_id)

    async def history(self, query: HistoryQuery) -> list[ScoreEvent]:
        """The user's events of one metric (each with the total after it), oldest first. A
        window that ends before it starts holds none."""
        if not self._check_history(query) or not await self._public(query.user_id):
            return []
        return await self.store.history(query)

    async def history_buckets(self, query: HistoryQuery) -> list[HistoryPoint]:
        """The user's total of one metric at the end of each hour or day in which it changed."""
        if query.bucket not in BUCKETS:
            raise InvalidRequest("bucket must be 'hour' or 'day'", code="invalid_bucket")
        if not self._check_history(query) or not await self._public(query.user_id):
            return []
        return await self.store.history_buckets(query)

    async def is_banned(self, user_id: str) -> bool:
        profile = await self.store.profile(user_id)
        return profile is not None and profile.status == "banned"

    async def _public(self, user_id: str) -> bool:
        """Whether the user's history is public: not of a hidden or banned user (whose history
        reads like an unknown user's: empty)."""
        profile = await self.store.profile(user_id)
        return profile is None or profile.status == "active"

    def check_user_id(self, user_id: str) -> None:
        if not is_valid_user_id(user_id):
            raise InvalidRequest(f"user_id must be {USER_ID_RULE}", code="invalid_user_id")

    def _check_history(self, query: HistoryQuery) -> bool:
        """Raise for a bad request; ``False`` when the window is empty (not an error: the
        OpenAPI document has no way to relate two parameters, so a client could not know)."""
        self.check_user_id(query.user_id)
        self.metric(query.metric)
        if not 1 <= query.limit <= HISTORY_MAX:
            raise InvalidRequest(f"limit must be 1-{HISTORY_MAX}")
        return query.since is None or query.until is None or query.since < query.until


async def period_closed_notice(
    store: ScoreStore, board_id: str, period_id: str, at: datetime
) -> webhooks.Notice:
    """The ``period.closed`` webhook event of a period, with its final top from the store."""
    final = await store.page(board_id, period_id, 0, webhooks.TOP_N)
    return webhooks.period_closed(board_id, period_id, _ranked(final, 0), at)


def _score(moved: BoardStanding) -> int | None:
    return None if moved.standing is None else moved.standing.score


def _ranked(rows: list[Standing], offset: int) -> tuple[RankedEntry, ...]:
    return tuple(
        RankedEntry(offset + i + 1, s.user_id, s.username, s.score) for i, s in enumerate(rows)
    )
