"""In-process rank index of one board: a sorted list of ranking keys plus a dict of each user's
standing, for the board's current period.

``sortedcontainers.SortedList`` keeps the keys ordered with O(log n) insert, remove and
position lookup, and O(log n + k) slicing, so the rank of a user and a page of k entries never
scan the board. Memory is one key tuple and one dict entry per user.

A write can only change the top ``top_k`` if the user was in it or enters it, which two
O(log n) position lookups tell; only then is the top rebuilt and compared. A new period empties
the index (the closed one is an archive, read from the store) and advances ``seq``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedList

from scoreboard.model import TOP_K, Placement, RankedEntry, Standing, Top, rank_key


class MemoryRankIndex:
    def __init__(self, *, order: str = "desc", top_k: int = TOP_K, period: str = "all") -> None:
        self.order = order
        self.top_k = top_k
        self._keys: SortedList = SortedList()
        self._users: dict[str, Standing] = {}
        self._gone: dict[str, int] = {}
        """The version at which a user was removed (hidden, or nothing of theirs counts): a
        write of their standing no newer than that is late, and dropped."""
        self._top = Top(0, (), period)
        self._started: Top | None = None
        """What ``start_period`` answered when it started the current period."""

    @property
    def period(self) -> str:
        return self._top.period

    def _key(self, standing: Standing) -> tuple[int, int, str]:
        return rank_key(standing.score, standing.reached, standing.user_id, self.order)

    async def apply(self, period: str, standing: Standing) -> Top | None:
        if period != self._top.period:
            return None  # another period's write: not this index's business
        old = self._users.get(standing.user_id)
        if old is not None and old.version >= standing.version:
            return None
        if self._gone.get(standing.user_id, 0) >= standing.version:
            return None
        self._gone.pop(standing.user_id, None)
        touches_top = False
        if old is not None:
            old_key = self._key(old)
            touches_top = self._keys.bisect_left(old_key) < self.top_k
            self._keys.remove(old_key)
        new_key = self._key(standing)
        self._users[standing.user_id] = standing
        self._keys.add(new_key)
        if touches_top or self._keys.bisect_left(new_key) < self.top_k:
            return self._advance()
        return None

    async def apply_and_rank(
        self, period: str, standing: Standing
    ) -> tuple[Top | None, int | None]:
        if period != self._top.period:
            return None, None
        moved = await self.apply(period, standing)
        return moved, await self.rank(standing.user_id)

    async def apply_and_move(self, period: str, standing: Standing) -> Placement:
        if period != self._top.period:
            return Placement(None, None, None, False)
        before = await self.rank(standing.user_id)
        old = self._users.get(standing.user_id)
        top = await self.apply(period, standing)
        stored = self._users.get(standing.user_id) is not old
        return Placement(top, before, await self.rank(standing.user_id), stored)

    async def remove(self, period: str, user_id: str, version: int) -> Top | None:
        if period != self._top.period:
            return None
        old = self._users.get(user_id)
        if (old is not None and old.version >= version) or self._gone.get(user_id, 0) >= version:
            return None
        self._gone[user_id] = version
        if old is None:
            return None
        key = self._key(old)
        touches_top = self._keys.bisect_left(key) < self.top_k
        self._keys.remove(key)
        del self._users[user_id]
        return self._advance() if touches_top else None

    async def forget(self, user_id: str) -> Top | None:
        self._gone.pop(user_id, None)
        old = self._users.pop(user_id, None)
        if old is None:
            return None
        key = self._key(old)
        touches_top = self._keys.bisect_left(key) < self.top_k
        self._keys.remove(key)
        return self._advance() if touches_top else None

    def _advance(self, period: str | None = None) -> Top | None:
        top = self._slice(0, self.top_k)
        if period is None and top == self._top.top:
            return None
        self._top = Top(self._top.seq + 1, top, period or self._top.period)
        return self._top

    async def board(self) -> Top:
        return self._top

    async def start_period(self, period: str) -> Top:
        if period == self._top.period:
            started = self._started
            return started if started is not None and started.period == period else self._top
        self._keys = SortedList()
        self._users.clear()
        self._gone.clear()
        top = self._advance(period)
        assert top is not None
        self._started = top
        return top

    async def load(self, period: str, standings: Iterable[Standing]) -> None:
        if period != self._top.period:
            await self.start_period(period)
        if not self._users:
            # Bulk path for a rebuild into an empty index: one sort instead of n inserts.
            for standing in standings:
                old = self._users.get(standing.user_id)
                if old is None or old.version < standing.version:
                    self._users[standing.user_id] = standing
            self._keys = SortedList(self._key(s) for s in self._users.values())
        else:
            for standing in standings:
                if self._gone.get(standing.user_id, 0) >= standing.version:
                    continue
                old = self._users.get(standing.user_id)
                if old is not None:
                    if old.version >= standing.version:
                        continue
                    self._keys.remove(self._key(old))
                self._users[standing.user_id] = standing
                self._keys.add(self._key(standing))
        self._advance()

    async def clear(self) -> None:
        self._keys = SortedList()
        self._users.clear()
        self._gone.clear()
        self._advance()

    async def top(self, k: int) -> tuple[RankedEntry, ...]:
        return self._slice(0, k)

    async def page(self, offset: int, limit: int) -> tuple[RankedEntry, ...]:
        return self._slice(offset, limit)

    def _slice(self, start: int, count: int) -> tuple[RankedEntry, ...]:
        users = self._users
        out = []
        for offset, key in enumerate(self._keys.islice(start, start + count)):
            standing = users[key[2]]
            out.append(
                RankedEntry(start + offset + 1, standing.user_id, standing.username, standing.score)
            )
        return tuple(out)

    async def rank(self, user_id: str) -> int | None:
        standing = self._users.get(user_id)
        if standing is None:
            return None
        return int(self._keys.index(self._key(standing))) + 1

    async def size(self) -> int:
        return len(self._users)
