"""In-process points window (embedded mode): per key, the reservations still inside the window.

Each key has a deque of its reservations, oldest first, and the sum of their points. A
reservation appends; reservations that left the window are dropped from the left when the key
is next reserved: O(1) amortized per reservation, whatever the points (``limits``' own moving
window stores one entry per unit of cost, so a reservation of 1,000 points would be 1,000
entries). Only a refusal walks the deque, to tell when enough points will have left it.

Memory is bounded by the reservations of the last ``span`` seconds: the keys are kept in the
order of their newest reservation, and every ``reserve`` first drops the keys at the front whose
newest reservation has left the window (each key is dropped once, so this too is O(1)
amortized; no sweep walks every key). A refunded reservation stops counting at once; its entry
goes with the others when it leaves the window.

A reservation with an ``action_id`` is found again by its member (``"<points>:a:<action_id>"``)
in a dict, and a reservation of the same action and points shares it: the entry counts its
holders, and gives its points back when the last one refunds.

It runs in the event loop only: nothing here awaits, so each call is atomic. The clock is
``time.monotonic`` unless one is given (tests place reservations at any instant with it).
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from scoreboard.model import PointsReservation, PointsTicket


class _Entry:
    __slots__ = ("at", "holders", "member", "points")

    def __init__(self, at: float, member: str, points: int) -> None:
        self.at = at
        self.member = member
        self.points = points  # 0 once refunded
        self.holders = 1  # reservations sharing it (the same action asked for again)


class _Window:
    __slots__ = ("entries", "members", "used")

    def __init__(self) -> None:
        self.entries: deque[_Entry] = deque()
        self.members: dict[str, _Entry] = {}
        self.used = 0

    def drop_until(self, start: float) -> None:
        """Drop the reservations made at or before ``start``: they left the window."""
        entries = self.entries
        while entries and entries[0].at <= start:
            entry = entries.popleft()
            self.used -= entry.points
            if self.members.get(entry.member) is entry:
                del self.members[entry.member]

    def seconds_until_fits(self, points: int, limit: int, now: float, span: float) -> float:
        need = self.used + points - limit
        if points > limit:
            return span
        freed = 0
        for entry in self.entries:
            freed += entry.points
            if freed >= need:
                return entry.at + span - now
        return span  # not reached: the entries hold ``used`` points, and used >= need


class MemoryPointsWindow:
    """A :class:`scoreboard.ports.PointsWindow` in this process's memory."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # Least recently reserved first: the front is where keys go idle.
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._ids = itertools.count()

    def __len__(self) -> int:
        """How many keys are held (for tests of the memory bound)."""
        return len(self._windows)

    async def reserve(
        self, key: str, points: int, *, limit: int, span: float, action_id: str | None = None
    ) -> PointsReservation:
        now = self._clock()
        start = now - span
        self._forget_idle(start)
        window = self._windows.get(key)
        if window is not None:
            window.drop_until(start)
        used = window.used if window is not None else 0
        member = None if action_id is None else f"{points}:a:{action_id}"
        if window is not None and member is not None:
            shared = window.members.get(member)
            if shared is not None:  # the same action holds its points already
                shared.holders += 1
                return PointsReservation(True, used, 0.0, PointsTicket(key, member, shared.at))
        if used + points > limit:
            if window is None:
                return PointsReservation(False, 0, span)
            return PointsReservation(
                False, used, window.seconds_until_fits(points, limit, now, span)
            )
        if window is None:
            window = self._windows[key] = _Window()
        else:
            self._windows.move_to_end(key)
        if member is None:
            member = f"{points}:r:{next(self._ids)}"
        entry = _Entry(now, member, points)
        window.entries.append(entry)
        window.members[member] = entry
        window.used += points
        return PointsReservation(True, used, 0.0, PointsTicket(key, member, now))

    async def refund(self, ticket: PointsTicket) -> None:
        window = self._windows.get(ticket.key)
        if window is None:
            return
        entry = window.members.get(ticket.member)
        if entry is None or entry.at != ticket.at:
            return
        entry.holders -= 1
        if entry.holders:
            return
        del window.members[ticket.member]
        window.used -= entry.points
        entry.points = 0

    async def forget(self, key: str) -> None:
        self._windows.pop(key, None)

    def _forget_idle(self, start: float) -> None:
        windows = self._windows
        while windows:
            key, window = next(iter(windows.items()))
            if window.entries and window.entries[-1].at > start:
                return
            del windows[key]
