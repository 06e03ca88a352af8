"""In-process rank index: a sorted list of ranking keys plus a dict of each user's entry.

``sortedcontainers.SortedList`` keeps the keys ordered with O(log n) insert, remove and
position lookup, and O(log n + k) slicing, so the rank of a user and a page of k entries never
scan the board. Memory is one key tuple and one dict entry per user.

A write can only change the top ``top_k`` if the user was in it or enters it, which two
O(log n) position lookups tell; only then is the top rebuilt and compared.
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedList

from scoreboard.model import TOP_K, Board, RankedEntry, UserTotal, rank_key


class MemoryRankIndex:
    def __init__(self, *, top_k: int = TOP_K) -> None:
        self.top_k = top_k
        self._keys: SortedList = SortedList()
        self._users: dict[str, UserTotal] = {}
        self._board = Board(0, ())

    async def apply(self, total: UserTotal) -> Board | None:
        old = self._users.get(total.user_id)
        if old is not None and old.version >= total.version:
            return None
        touches_top = False
        if old is not None:
            old_key = rank_key(old.score, old.reached, old.user_id)
            touches_top = self._keys.bisect_left(old_key) < self.top_k
            self._keys.remove(old_key)
        new_key = rank_key(total.score, total.reached, total.user_id)
        self._users[total.user_id] = total
        self._keys.add(new_key)
        if touches_top or self._keys.bisect_left(new_key) < self.top_k:
            return self._advance()
        return None

    async def apply_and_rank(self, total: UserTotal) -> tuple[Board | None, int | None]:
        moved = await self.apply(total)
        return moved, await self.rank(total.user_id)

    def _advance(self) -> Board | None:
        top = self._slice(0, self.top_k)
        if top == self._board.top:
            return None
        self._board = Board(self._board.seq + 1, top)
        return self._board

    async def board(self) -> Board:
        return self._board

    async def load(self, totals: Iterable[UserTotal]) -> None:
        if not self._users:
            # Bulk path for a rebuild into an empty index: one sort instead of n inserts.
            for total in totals:
                old = self._users.get(total.user_id)
                if old is None or old.version < total.version:
                    self._users[total.user_id] = total
            self._keys = SortedList(
                rank_key(t.score, t.reached, t.user_id) for t in self._users.values()
            )
        else:
            for total in totals:
                old = self._users.get(total.user_id)
                if old is not None:
                    if old.version >= total.version:
                        continue
                    self._keys.remove(rank_key(old.score, old.reached, old.user_id))
                self._users[total.user_id] = total
                self._keys.add(rank_key(total.score, total.reached, total.user_id))
        self._advance()

    async def clear(self) -> None:
        self._keys = SortedList()
        self._users.clear()
        self._advance()

    async def top(self, k: int) -> tuple[RankedEntry, ...]:
        return self._slice(0, k)

    async def page(self, offset: int, limit: int) -> tuple[RankedEntry, ...]:
        return self._slice(offset, limit)

    def _slice(self, start: int, count: int) -> tuple[RankedEntry, ...]:
        users = self._users
        out = []
        for offset, key in enumerate(self._keys.islice(start, start + count)):
            total = users[key[2]]
            out.append(RankedEntry(start + offset + 1, total.user_id, total.username, total.score))
        return tuple(out)

    async def rank(self, user_id: str) -> int | None:
        total = self._users.get(user_id)
        if total is None:
            return None
        return int(self._keys.index(rank_key(total.score, total.reached, user_id))) + 1

    async def size(self) -> int:
        return len(self._users)
