"""In-memory score store: the unit tests' fake, with the same contract as the SQL stores.

Nothing is durable; it exists so the service can be tested without I/O and so the contract
tests have a reference implementation to compare the real stores with.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from scoreboard.errors import ActionConflict
from scoreboard.model import Applied, ScoreUpdate, UserTotal


class MemoryScoreStore:
    def __init__(self) -> None:
        self._users: dict[str, UserTotal] = {}
        self._actions: dict[tuple[str, str], int] = {}
        self._events: list[tuple[int, str, int, str]] = []

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def apply(self, update: ScoreUpdate) -> Applied:
        action_id = update.action_id or uuid.uuid4().hex
        previous = self._actions.get((update.user_id, action_id))
        if previous is not None:
            if previous != update.delta:
                raise ActionConflict("this action_id was already used with a different score_delta")
            return Applied(self._users[update.user_id], replayed=True)
        event_id = len(self._events) + 1
        self._events.append((event_id, update.user_id, update.delta, action_id))
        self._actions[(update.user_id, action_id)] = update.delta
        old = self._users.get(update.user_id)
        total = UserTotal(
            user_id=update.user_id,
            username=update.username or (old.username if old else update.user_id),
            score=(old.score if old else 0) + update.delta,
            version=(old.version if old else 0) + 1,
            reached=event_id,
        )
        self._users[update.user_id] = total
        return Applied(total)

    async def get_user(self, user_id: str) -> UserTotal | None:
        return self._users.get(user_id)

    async def iter_totals(self) -> AsyncIterator[list[UserTotal]]:
        yield list(self._users.values())

    @property
    def event_count(self) -> int:
        return len(self._events)
