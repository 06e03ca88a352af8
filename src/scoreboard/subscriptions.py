"""The views of ``/ws``: one socket, many subscriptions (top N, around a user, a user's own row).

A **view** is what one subscription shows: the first ``limit`` rows of a board (``top``), the
rows from ``radius`` above to ``radius`` below a user (``around``), or the user's own row
(``me``, radius 0), in the board's current period. Subscriptions asking for the same thing share
one view, so a view is read and encoded once however many sockets hold it; each subscription
keeps its own ``seq``.

**Only the windows a move can change are read again.** Every stored write publishes a
:class:`~scoreboard.events.StandingMoved` with the user's rank before and after it (the rank
index gives both in the write's atomic step). A user moving from rank ``a`` to rank ``b`` moves
only the entries ranked between ``b`` and ``a``; a new user entering at ``b`` moves everyone from
``b`` down, a user leaving at ``a`` everyone from ``a`` down. So a view needs reading again only
if its window overlaps that span, or it is the mover's own view. Per board, the views are held
in a :class:`BoardViews`: ``top`` views by limit (at most 100 distinct), and the anchored views
(``around``, ``me``) in a sorted list keyed by the current rank of the user they follow. The
views a move can change are found with one range query, anchors within ``[lo - RADIUS_MAX,
hi + RADIUS_MAX]`` filtered by each view's own radius: O(log V + K) for V anchored views of
which K are returned, instead of O(V). The K views are then read in as few index reads as
there are disjoint runs of their windows (overlapping windows are merged and read once), and an
anchor is found again in the rows read (it moved by at most one rank unless it was the mover);
a view's anchor that was not found, or whose user is not ranked, is read alone (``rank`` then a
``page``). A move that no window overlaps costs one range query and nothing else.

Why the anchors stay right without reading them: a move that does not overlap a window cannot
change the rank of the user that window is centred on, since that user is inside the window.

**Order and coalescing.** Per board, one worker task takes the pending moves in a batch, reads
the union of the views they touch once, and tells each view's subscriptions of a change only
when its rows (or its period) differ from what it showed. A new period, a rebuilt index, a
catch-up after lost bus messages and an operator's action (a move with both ranks unknown) read
every view of the board again; a view whose period changed goes out as a ``snapshot``.

**Sockets.** Each socket has an :class:`Outbox`: its subscriptions' newest states (one slot
each, built into a message only when the socket can take it, so a slow socket skips states and
costs nothing meanwhile) and, in order, the messages that must all arrive (``me`` events,
errors), bounded by ``max_messages``; a socket that falls that far behind is closed (1013) and
resubscribes. Nothing here waits on a socket.

``seq`` is a subscription's own: it rises by one with every state of its view the subscription
is given. A socket that keeps up sees 1, 2, 3, ...; a gap means states were coalesced away for a
slow socket (the one received is whole).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
from sortedcontainers import SortedList

from scoreboard.errors import NotFound
from scoreboard.events import StandingMoved, rankings_json
from scoreboard.model import TOP_K, RankedEntry

if TYPE_CHECKING:
    from scoreboard.service import ScoreService, Served

log = logging.getLogger(__name__)

ViewKind = Literal["top", "around", "me"]
VIEWS: tuple[ViewKind, ...] = ("top", "around", "me")
TOP_LIMIT_MAX = 100
RADIUS_MAX = 25
SUBSCRIPTIONS_MAX = 20
"""Subscriptions one socket may hold at once."""
MESSAGES_MAX = 256
"""Messages that must all arrive (events, errors) one socket may have waiting: past it, the
socket is closed with 1013."""
EVENTS_TOP = TOP_K
"""``entered_top`` and ``left_top`` are about this top."""


@dataclass(frozen=True, slots=True)
class MeEvent:
    """A change of a ``me`` view's user's place, as ``/ws`` sends it."""

    event: Literal["rank_changed", "overtaken", "entered_top", "left_top"]
    rank: int | None
    score: int | None
    by: StandingMoved | None = None


_view_ids = itertools.count(1)


class View:
    """One thing shown to subscriptions: its rows in the board's ``period`` and, for an
    anchored view, the rank of the user it follows (``None``: not ranked)."""

    __slots__ = (
        "board",
        "dropped",
        "id",
        "kind",
        "period",
        "rank",
        "ready",
        "rows",
        "rows_json",
        "size",
        "subscriptions",
        "user_id",
    )

    def __init__(self, board: str, kind: ViewKind, user_id: str | None, size: int) -> None:
        self.id = next(_view_ids)
        self.board = board
        self.kind = kind
        self.user_id = user_id
        self.size = size
        """``limit`` of a top view, ``radius`` of an around view, 0 for a me view."""
        self.rows: tuple[RankedEntry, ...] = ()
        self.rows_json = orjson.Fragment(b"[]")
        self.rank: int | None = None
        self.period = ""
        self.subscriptions: set[Subscription] = set()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.dropped = False

    @property
    def key(self) -> tuple[ViewKind, str | None, int]:
        return (self.kind, self.user_id, self.size)

    def show(self, period: str, rows: tuple[RankedEntry, ...], rank: int | None) -> bool:
        """Take a new state; whether it differs from the one shown."""
        changed = rows != self.rows or period != self.period
        self.rank = rank
        if changed:
            self.rows, self.period = rows, period
            self.rows_json = orjson.Fragment(orjson.dumps(rankings_json(rows)))
        return changed

    def window(self, rank: int) -> tuple[int, int]:
        """The ranks shown when the followed user is at ``rank`` (1-based, inclusive)."""
        return max(1, rank - self.size), rank + self.size


class Subscription:
    """One subscription of one socket to one view."""

    __slots__ = ("id", "outbox", "period", "seq", "snapshot", "view")

    def __init__(self, sub_id: str, view: View, outbox: Outbox) -> None:
        self.id = sub_id
        self.view = view
        self.outbox = outbox
        self.seq = 1
        self.snapshot = True
        self.period = view.period

    def message(self, *, sent: bool = True) -> str:
        """The view's newest state as this subscription's next message: a ``snapshot`` first
        and after a new period, else an ``update``. ``sent=False``: only to try a write, which
        may fail (the next message is then built the same way)."""
        view = self.view
        kind = "snapshot" if self.snapshot or self.period != view.period else "update"
        if sent:
            self.snapshot, self.period = False, view.period
        return orjson.dumps(
            {
                "type": kind,
                "id": self.id,
                "board": view.board,
                "period": view.period,
                "seq": self.seq,
                "rows": view.rows_json,
            }
        ).decode()

    def changed(self) -> None:
        self.seq += 1
        self.outbox.mark(self)


class Outbox:
    """What one socket is owed, in order. ``put`` and ``mark`` never block.

    A subscription's state takes one place in the order until it is sent (``mark``: marking it
    again only makes its message newer), so a burst costs a slow socket one message per view;
    messages given to ``put`` are all delivered, in order, and past ``max_messages`` waiting the
    outbox closes itself with ``overflowed`` set (the socket is then closed with 1013).

    ``direct``, when the socket offers it, writes a message at once if the socket can take it
    (``False``: it cannot, nothing was written). While nothing waits here, ``put`` and ``mark``
    try it first, so a socket that keeps up gets its messages without a task switch, as the
    push channels' fan-out does; the socket's writer sends whatever had to wait.
    """

    __slots__ = (
        "_closed",
        "_messages",
        "_pending",
        "_queue",
        "_wake",
        "closed",
        "direct",
        "going_away",
        "max_messages",
        "overflowed",
        "subscriptions",
    )

    def __init__(self, max_messages: int = MESSAGES_MAX) -> None:
        self.max_messages = max_messages
        self._queue: deque[str | Subscription] = deque()
        self._pending: set[Subscription] = set()
        self._messages = 0
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self.subscriptions: dict[str, Subscription] = {}
        self.closed = False
        self.overflowed = False
        self.going_away = False
        """The server is shutting down: close the socket with 1001."""
        self.direct: Callable[[str], bool] | None = None

    def put(self, message: str) -> None:
        if self.closed:
            return
        if not self._queue and self.direct is not None and self.direct(message):
            return
        if self._messages >= self.max_messages:
            self.overflowed = True
            self.close()
            return
        self._queue.append(message)
        self._messages += 1
        self._wake.set()

    def mark(self, subscription: Subscription) -> None:
        if self.closed or subscription in self._pending:
            return
        direct = self.direct
        if not self._queue and direct is not None and direct(subscription.message(sent=False)):
            subscription.message()  # it went out: the next one is an update
            return
        self._pending.add(subscription)
        self._queue.append(subscription)
        self._wake.set()

    def drop(self, subscription: Subscription) -> None:
        """The subscription is gone: its waiting state is not sent."""
        self._pending.discard(subscription)

    def take(self) -> str | None:
        """The next message, or ``None`` when nothing waits."""
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, str):
                self._messages -= 1
                return item
            if item in self._pending:
                self._pending.discard(item)
                return item.message()
        return None

    async def next(self) -> str | None:
        """The next message, waiting for one; ``None`` once closed."""
        while await self.ready():
            message = self.take()
            if message is not None:
                return message
        return None

    async def ready(self) -> bool:
        """Wait until a message may wait here (``True``) or the outbox is closed (``False``)."""
        while not self.closed:
            if self._queue:
                return True
            self._wake.clear()
            await self._wake.wait()
        return False

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def close(self) -> None:
        self.closed = True
        self._wake.set()
        self._closed.set()

    def go_away(self) -> None:
        self.going_away = True
        self.close()


class BoardViews:
    """The views of one board, indexed by the ranks they show (see the module docstring)."""

    def __init__(self, board: str) -> None:
        self.board = board
        self.views: dict[tuple[ViewKind, str | None, int], View] = {}
        self.tops: dict[int, View] = {}
        self.anchors: SortedList = SortedList()
        """``(rank, view id)`` of every ready anchored view whose user is ranked."""
        self.anchored: dict[int, View] = {}
        self.by_user: dict[str, set[View]] = {}
        self.work: deque[StandingMoved | View | None] = deque()
        """Pending: moves, views to read first (a new view), ``None`` (read every view)."""
        self.worker: asyncio.Task[None] | None = None
        self.period = ""

    def add(self, view: View) -> None:
        self.views[view.key] = view
        if view.kind == "top":
            self.tops[view.size] = view
        else:
            assert view.user_id is not None
            self.by_user.setdefault(view.user_id, set()).add(view)

    def remove(self, view: View) -> None:
        view.dropped = True
        self.views.pop(view.key, None)
        if view.kind == "top":
            self.tops.pop(view.size, None)
            return
        assert view.user_id is not None
        self.unanchor(view)
        users = self.by_user.get(view.user_id)
        if users is not None:
            users.discard(view)
            if not users:
                del self.by_user[view.user_id]

    def anchor(self, view: View) -> None:
        """Index the view at its rank (after it was read)."""
        if view.kind != "top" and view.rank is not None and not view.dropped:
            self.anchors.add((view.rank, view.id))
            self.anchored[view.id] = view

    def unanchor(self, view: View) -> None:
        if self.anchored.pop(view.id, None) is not None:
            assert view.rank is not None
            self.anchors.discard((view.rank, view.id))

    def affected(self, lo: int, hi: int | None) -> set[View]:
        """The views whose windows overlap ranks ``lo..hi`` (``None``: to the end)."""
        found = {view for limit, view in self.tops.items() if lo <= limit}
        top = None if hi is None else (hi + RADIUS_MAX + 1,)
        for rank, view_id in self.anchors.irange((lo - RADIUS_MAX,), top, inclusive=(True, False)):
            view = self.anchored[view_id]
            if rank - view.size <= (hi if hi is not None else rank) and rank + view.size >= lo:
                found.add(view)
        return found


def span(move: StandingMoved) -> tuple[int, int | None] | None:
    """The ranks whose entries a move can have changed (``hi`` ``None``: to the end of the
    board); ``None`` when nobody knows (every view may have changed)."""
    ranks = [r for r in (move.before, move.after) if r is not None]
    if not ranks:
        return None
    if len(ranks) == 1:  # entered or left the board: everyone below moved by one
        return ranks[0], None
    return min(ranks), max(ranks)


def me_events(
    user_id: str,
    before: tuple[int | None, int | None],
    after: tuple[int | None, int | None],
    moves: Iterable[StandingMoved],
) -> list[MeEvent]:
    """What a ``me`` view's user is told when their (rank, score) went from ``before`` to
    ``after`` over ``moves`` (in the order they were applied).

    The moves are replayed against the user's rank: their own move is ``rank_changed``; someone
    moving from below them (or from off the board) to above them is ``overtaken`` ``by`` that
    user; someone above them falling below them (or leaving) is ``rank_changed``. Crossing the
    top 10 adds ``entered_top`` or ``left_top``. Whatever the replay cannot explain (moves
    applied in another order than they arrived, an operator's action) ends in one
    ``rank_changed`` to the rank read from the index.
    """
    rank, score = before
    events: list[MeEvent] = []

    def moved(to: int | None, new_score: int | None, by: StandingMoved | None) -> None:
        nonlocal rank, score
        if to == rank:
            score = new_score
            return
        kind: Literal["rank_changed", "overtaken"] = "rank_changed"
        if by is not None:
            kind = "overtaken"
        events.append(MeEvent(kind, to, new_score if to is not None else None, by))
        was_top = rank is not None and rank <= EVENTS_TOP
        is_top = to is not None and to <= EVENTS_TOP
        if is_top and not was_top:
            events.append(MeEvent("entered_top", to, new_score, None))
        elif was_top and not is_top:
            events.append(MeEvent("left_top", to, new_score if to is not None else None, None))
        rank, score = to, new_score

    for move in moves:
        if move.user_id == user_id:
            moved(move.after, move.score if move.after is not None else None, None)
        elif rank is None:
            continue
        elif (
            move.after is not None
            and move.after <= rank
            and (move.before is None or move.before > rank)
        ):
            moved(rank + 1, score, move)
        elif (
            move.before is not None
            and move.before < rank
            and (move.after is None or move.after >= rank)
        ):
            moved(rank - 1, score, None)
    moved(after[0], after[1], None)
    return events


class LiveViews:
    """Every ``/ws`` view of this process, by board, kept up to date from the moves the bus
    brings (``scoreboard.keeper`` feeds :meth:`moved` and :meth:`unsettled`)."""

    def __init__(self, service: ScoreService) -> None:
        self._service = service
        self._boards: dict[str, BoardViews] = {}

    # -- sockets ----------------------------------------------------------------------------

    async def subscribe(
        self,
        outbox: Outbox,
        sub_id: str,
        board: str,
        kind: ViewKind,
        user_id: str | None,
        size: int,
    ) -> Subscription:
        """Subscribe ``outbox`` to a view (read first if nobody held it); its snapshot is then
        owed to the socket. ``NotFound`` for a board that is not served; ``Unavailable`` when
        the rank index cannot be read."""
        if board not in self._service.boards:
            raise NotFound(f"there is no board '{board}'", code="unknown_board")
        views = self._boards.get(board)
        if views is None:
            views = self._boards[board] = BoardViews(board)
        view = views.views.get((kind, user_id, size))
        if view is None:
            view = View(board, kind, user_id, size)
            views.add(view)
            views.work.append(view)
            self._kick(views)
        try:
            await asyncio.shield(view.ready)
        except BaseException:
            if not view.subscriptions and not view.dropped:
                views.remove(view)
            raise
        subscription = Subscription(sub_id, view, outbox)
        if outbox.closed:  # the socket went while the view was read
            if not view.subscriptions:
                views.remove(view)
            return subscription
        view.subscriptions.add(subscription)
        outbox.subscriptions[sub_id] = subscription
        outbox.mark(subscription)
        return subscription

    def unsubscribe(self, outbox: Outbox, sub_id: str) -> bool:
        subscription = outbox.subscriptions.pop(sub_id, None)
        if subscription is None:
            return False
        outbox.drop(subscription)
        view = subscription.view
        view.subscriptions.discard(subscription)
        if not view.subscriptions:
            views = self._boards.get(view.board)
            if views is not None:
                views.remove(view)
        return True

    def close(self, outbox: Outbox) -> None:
        """The socket is gone: every subscription of it ends."""
        outbox.close()
        for sub_id in list(outbox.subscriptions):
            self.unsubscribe(outbox, sub_id)

    def count(self, board: str | None = None) -> int:
        """How many views are held (of ``board``, or in all)."""
        boards = self._boards.values() if board is None else [self._boards.get(board)]
        return sum(len(b.views) for b in boards if b is not None)

    # -- what moved --------------------------------------------------------------------------

    def moved(self, event: StandingMoved) -> None:
        views = self._boards.get(event.board)
        if views is None or not views.views:
            return
        views.work.append(event)
        self._kick(views)

    def unsettled(self, board: str) -> None:
        """Read every view of ``board`` again (a new period, a rebuilt index, a catch-up)."""
        views = self._boards.get(board)
        if views is None or not views.views:
            return
        views.work.append(None)
        self._kick(views)

    def _retire(self, views: BoardViews) -> None:
        """The board is no longer served: each of its subscriptions ends with an error."""
        for view in list(views.views.values()):
            for subscription in tuple(view.subscriptions):
                subscription.outbox.put(
                    _error(subscription.id, "unknown_board", "the board is no longer served")
                )
                self.unsubscribe(subscription.outbox, subscription.id)
        self._boards.pop(views.board, None)

    def _kick(self, views: BoardViews) -> None:
        if views.worker is None:
            views.worker = asyncio.get_running_loop().create_task(self._work(views))

    async def _work(self, views: BoardViews) -> None:
        try:
            while views.work:
                batch = list(views.work)
                views.work.clear()
                try:
                    await self._refresh(views, batch)
                except Exception as exc:
                    for item in batch:
                        if isinstance(item, View) and not item.ready.done():
                            item.ready.set_exception(exc)
                    if not isinstance(exc, NotFound):
                        log.warning("live views of %s not refreshed: %s", views.board, exc)
        finally:
            views.worker = None
            if views.work:  # arrived while finishing
                self._kick(views)

    async def _refresh(self, views: BoardViews, batch: list[StandingMoved | View | None]) -> None:
        served = self._service.boards.get(views.board)
        if served is None:
            self._retire(views)
            raise NotFound(f"there is no board '{views.board}'", code="unknown_board")
        period = served.period.id
        added = [item for item in batch if isinstance(item, View) and not item.dropped]
        moves = [m for m in batch if isinstance(m, StandingMoved) and m.period == period]
        everything = views.period != period or any(
            item is None or (isinstance(item, StandingMoved) and span(item) is None)
            for item in batch
        )
        if everything:
            targets = {v for v in views.views.values() if v.ready.done()}
        else:
            targets = set()
            for move in moves:
                ranks = span(move)
                assert ranks is not None
                targets |= views.affected(*ranks)
                targets |= views.by_user.get(move.user_id, set())
        targets.update(added)
        targets = {v for v in targets if not v.dropped}
        if not targets:
            views.period = period
            return
        movers = {m.user_id for m in moves}
        states = await _read(served, targets, movers, alone=everything)
        views.period = period
        for view in targets:
            if view.dropped:
                continue
            rows, rank = states[view]
            was_rank = view.rank
            was_score = _score_of(view)
            same_period = view.period == period
            views.unanchor(view)
            changed = view.show(period, rows, rank)
            views.anchor(view)
            if not view.ready.done():
                view.ready.set_result(None)
                continue
            if changed:
                for subscription in tuple(view.subscriptions):
                    subscription.changed()
            # A new period is a snapshot, not a rank change: every rank starts again.
            if view.kind == "me" and view.subscriptions and same_period:
                assert view.user_id is not None
                now = (rank, _score_of(view))
                events = me_events(view.user_id, (was_rank, was_score), now, moves)
                if events:
                    _announce(view, events)


def _error(sub_id: str, code: str, message: str) -> str:
    return orjson.dumps({"type": "error", "id": sub_id, "error": code, "message": message}).decode()


def _score_of(view: View) -> int | None:
    return view.rows[0].score if view.kind == "me" and view.rows else None


def _announce(view: View, events: list[MeEvent]) -> None:
    for subscription in tuple(view.subscriptions):
        for event in events:
            subscription.outbox.put(_event_message(subscription.id, view, event))


def _event_message(sub_id: str, view: View, event: MeEvent) -> str:
    by: dict[str, Any] | None = None
    if event.by is not None:
        by = {"user_id": event.by.user_id, "username": event.by.username, "score": event.by.score}
    return orjson.dumps(
        {
            "type": "event",
            "id": sub_id,
            "event": event.event,
            "board": view.board,
            "period": view.period,
            "rank": event.rank,
            "score": event.score,
            "by": by,
        }
    ).decode()


async def _read(
    served: Served, views: set[View], movers: set[str], *, alone: bool
) -> dict[View, tuple[tuple[RankedEntry, ...], int | None]]:
    """The rows (and followed rank) of each view now. Windows are read together in as few
    ``page`` reads as there are disjoint runs of them; a view whose user moved, is not ranked,
    or is not found within one rank of where it was is read alone (``alone``: every anchored
    view is, e.g. in a new period where the old ranks mean nothing)."""
    index = served.index
    planned: list[tuple[View, int, int]] = []
    single: list[View] = []
    for view in views:
        if view.kind == "top":
            planned.append((view, 1, view.size))
        elif alone or view.rank is None or view.user_id in movers:
            single.append(view)
        else:
            lo, hi = view.window(view.rank)
            planned.append((view, max(1, lo - 1), hi + 1))
    rows: dict[int, RankedEntry] = {}
    for lo, hi in _merged((lo, hi) for _, lo, hi in planned):
        for entry in await index.page(lo - 1, hi - lo + 1):
            rows[entry.rank] = entry
    states: dict[View, tuple[tuple[RankedEntry, ...], int | None]] = {}
    for view, _, _ in planned:
        if view.kind == "top":
            states[view] = (_run(rows, 1, view.size), None)
            continue
        assert view.rank is not None
        found = next(
            (
                r
                for r in (view.rank, view.rank + 1, view.rank - 1)
                if r in rows and rows[r].user_id == view.user_id
            ),
            None,
        )
        if found is None:
            single.append(view)
        else:
            states[view] = (_run(rows, *view.window(found)), found)
    for view in single:
        assert view.user_id is not None
        rank = await index.rank(view.user_id)
        if rank is None:
            states[view] = ((), None)
            continue
        lo, hi = view.window(rank)
        window = await index.page(lo - 1, hi - lo + 1)
        mine = next((e.rank for e in window if e.user_id == view.user_id), rank)
        states[view] = (window, mine)
    return states


def _run(rows: dict[int, RankedEntry], lo: int, hi: int) -> tuple[RankedEntry, ...]:
    return tuple(rows[r] for r in range(lo, hi + 1) if r in rows)


def _merged(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged
