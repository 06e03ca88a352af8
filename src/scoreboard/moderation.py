"""What operators do (``/api/admin``): look a user up, void and restore events, adjust, rename,
hide, ban, erase, roll a season over, and read the audit trail.

The store does each action in one transaction with its audit row (``ports.AdminStore``) and
returns every standing it changed; this module brings the rank indexes of the boards' current
periods up to them and announces the new tops, exactly as an update does, so that public reads
reflect the action once it is answered and every open page (every process, through the bus and
the shared index) shows it within moments. Archives need nothing more: they are read from the
store.

Decisions (docs/operations.md, "Moderation"):

- A hidden or banned user is left out of every public read, current periods and archives
  alike, and their history reads like an unknown user's; their updates still count (a hidden
  user's) or are refused (a banned one's), and unhiding shows every period as it now stands.
- A voided event counts nowhere, in no period and no history, until restored; an operator
  still sees it, marked ``voided``.
- An erased user is gone from the store, every index and the audit (where a keyed hash stands
  in for their id); nothing about them can be restored, and the same id later is a new user.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from scoreboard import webhooks
from scoreboard.boards import BoardsConfig
from scoreboard.errors import InvalidRequest, NotFound, Unavailable
from scoreboard.model import (
    DELTA_LIMIT,
    USER_ID_RULE,
    USERNAME_MAX,
    Applied,
    Audit,
    AuditEntry,
    EventRecord,
    Moderated,
    Moved,
    ScoreUpdate,
    UpdateResult,
    UserProfile,
    is_valid_action_id,
    is_valid_user_id,
    is_valid_username,
)
from scoreboard.periods import Period
from scoreboard.ports import AdminStore
from scoreboard.service import ScoreService

log = logging.getLogger(__name__)

STATUS_OF = {"hide": "hidden", "unhide": "active", "ban": "banned", "unban": "active"}
"""The status each action leaves the user with."""
REASON_MAX = 500
EVENTS_MAX = 100
AUDIT_MAX = 100
FORGET_AGAIN_AFTER = 1.0
"""An update committed just before an erasure may reach a rank index just after it: the index
is swept once more after this many seconds."""

Forgetter = Callable[[str], Awaitable[None]]
"""Something outside the store that keeps per-user state (rate-limit counters, the token
cache), told to drop a user when they are erased."""


@dataclass(frozen=True, slots=True)
class Placing:
    """A user on one board, as an operator sees it: the current period, their score there and
    their rank (``None`` when not ranked: no entry, or hidden)."""

    board: str
    period: str
    score: int | None
    rank: int | None


@dataclass(frozen=True, slots=True)
class UserView:
    profile: UserProfile
    boards: tuple[Placing, ...]


def erased_id(key: bytes, user_id: str) -> str:
    """What stands for an erased user's id in the audit: a keyed hash (HMAC-SHA256 with the
    data folder's erasure key), so the trail can still tell that two actions concerned one
    user, and nobody without the key can test a guess."""
    digest = hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()
    return f"erased:{digest[:32]}"


REASON_PATTERN = r"[^ \t\n\r]"
r"""A reason holds something besides spaces, tabs and line breaks (a JSON Schema pattern: found
anywhere; written out rather than ``\S``, whose meaning differs between Python and JavaScript)."""
_REASON_RE = re.compile(REASON_PATTERN)


def check_reason(reason: object) -> str:
    if (
        not isinstance(reason, str)
        or not 1 <= len(reason) <= REASON_MAX
        or _REASON_RE.search(reason) is None
    ):
        raise InvalidRequest(
            f"reason must be 1-{REASON_MAX} characters, not all spaces", code="invalid_reason"
        )
    return reason


class Moderation:
    """The operators' actions over a started :class:`ScoreService` and its store's
    :class:`AdminStore` side."""

    def __init__(
        self,
        service: ScoreService,
        admin: AdminStore,
        *,
        erasure_key: bytes,
        forgetters: Sequence[Forgetter] = (),
        forget_again_after: float = FORGET_AGAIN_AFTER,
    ) -> None:
        self.service = service
        self.admin = admin
        self.erasure_key = erasure_key
        self.forgetters = list(forgetters)
        self.forget_again_after = forget_again_after
        self._sweeps: set[asyncio.Task[None]] = set()
        self.on_queued: Callable[[], None] = lambda: None
        """Told when an action queued a webhook delivery (the courier looks at once)."""

    # -- reads ------------------------------------------------------------------------------

    async def user(self, user_id: str) -> UserView:
        profile = await self._profile(user_id)
        placings = []
        default = self.service.default_board
        for board_id in sorted(self.service.boards, key=lambda b: (b != default, b)):
            served = self.service.boards[board_id]
            entry = await self.admin.standing_of(board_id, served.period.id, user_id)
            score = rank = None
            if entry is not None:
                standing, shown = entry
                score = standing.score
                if shown:
                    rank = await self.service.store.rank_of(
                        board_id, served.period.id, served.board.order, standing
                    )
            placings.append(Placing(board_id, served.period.id, score, rank))
        return UserView(profile, tuple(placings))

    async def events(self, user_id: str, *, limit: int, before: int | None) -> list[EventRecord]:
        await self._profile(user_id)
        _check_limit(limit, EVENTS_MAX)
        return await self.admin.events_of(user_id, limit=limit, before=before)

    async def audit(self, *, limit: int, before: int | None) -> list[AuditEntry]:
        _check_limit(limit, AUDIT_MAX)
        return await self.admin.audit_page(limit=limit, before=before)

    # -- actions ----------------------------------------------------------------------------

    async def void(self, event_id: int, key: str, reason: str, *, restore: bool = False) -> bool:
        """``False`` when the event already was voided (restored): nothing changed."""
        check_reason(reason)
        found = await self.admin.event(event_id)
        if found is None:
            raise NotFound(f"there is no event {event_id}", code="unknown_event")
        action = "restore" if restore else "void"
        details: dict[str, object] = {
            "user_id": found.user_id,
            "metric": found.metric,
            "delta": found.delta,
        }
        audit = Audit(key, action, f"event:{event_id}", reason, details)
        config = self._config()
        notice = None
        if not restore:
            boards = [b.id for b in config.boards.values() if b.metric == found.metric]
            notice = webhooks.score_voided(
                event_id, found.user_id, found.metric, found.delta, boards
            )
        done = await self.admin.void(event_id, config, audit, restore=restore, notice=notice)
        if done.changed and notice is not None:
            self.on_queued()
        await self._take_up(done)
        return done.changed

    async def set_status(self, user_id: str, action: str, key: str, reason: str) -> bool:
        """``action``: ``hide``, ``unhide``, ``ban`` or ``unban`` (both undos make the user
        active). ``False`` when the user already had that status."""
        check_reason(reason)
        status = STATUS_OF.get(action)
        if status is None:
            raise InvalidRequest(f"action must be one of {', '.join(STATUS_OF)}")
        profile = await self._profile(user_id)
        audit = Audit(key, action, user_id, reason, {"from": profile.status, "to": status})
        done = await self.admin.set_status(user_id, status, self._config(), audit)
        await self._take_up(done)
        return done.changed

    async def rename(self, user_id: str, username: str | None, key: str, reason: str) -> bool:
        """``username`` ``None``: unlock the name (a token's ``name`` replaces it again)."""
        check_reason(reason)
        self._check_user_id(user_id)
        if username is not None and not is_valid_username(username):
            raise InvalidRequest(
                f"username must be 1-{USERNAME_MAX} characters without control or invisible "
                "formatting characters, and without spaces at either end",
                code="invalid_username",
            )
        await self._profile(user_id)
        details: dict[str, object] = {} if username is None else {"username": username}
        action = "rename" if username is not None else "unlock_name"
        audit = Audit(key, action, user_id, reason, details)
        done = await self.admin.rename(user_id, username, audit)
        await self._take_up(done)
        return done.changed

    async def adjust(
        self, user_id: str, metric: str, delta: int, action_id: str, key: str, reason: str
    ) -> UpdateResult:
        """An operator's event: counts on the ``sum`` boards of ``metric``, idempotent by
        ``action_id`` like an update."""
        check_reason(reason)
        self._check_user_id(user_id)
        self.service.metric(metric)
        if type(delta) is not int or delta == 0 or abs(delta) > DELTA_LIMIT:
            raise InvalidRequest(
                f"delta must be a non-zero integer within ±{DELTA_LIMIT}", code="invalid_delta"
            )
        if not is_valid_action_id(action_id):
            raise InvalidRequest(
                "action_id must be 1-128 characters without control or invisible formatting "
                "characters",
                code="invalid_action_id",
            )
        await self._profile(user_id)
        update = ScoreUpdate(user_id, delta, action_id, metric=metric, source="admin")
        details: dict[str, object] = {"metric": metric, "delta": delta, "action_id": action_id}
        audit = Audit(key, "adjust", user_id, reason, details)
        applied: Applied = await self.admin.adjust(update, audit)
        return await self.service.placed(applied)

    async def erase(self, user_id: str, key: str, reason: str) -> str:
        """Erase the user everywhere; returns what stands for them in the audit."""
        check_reason(reason)
        self._check_user_id(user_id)
        await self._profile(user_id)
        hashed = erased_id(self.erasure_key, user_id)
        await self.admin.erase(user_id, hashed, Audit(key, "erase", hashed, reason, {}))
        await self._forget(user_id)
        for forget in self.forgetters:
            await forget(user_id)
        task = asyncio.create_task(self._forget_later(user_id))
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)
        return hashed

    async def rollover(self, board_id: str, key: str, reason: str) -> tuple[Period, Period]:
        check_reason(reason)
        closed, opened = await self.service.rollover(board_id)
        details: dict[str, object] = {"closed": closed.id, "opened": opened.id}
        await self.admin.record(Audit(key, "rollover", f"board:{board_id}", reason, details))
        return closed, opened

    async def record(self, key: str, action: str, target: str, details: dict[str, object]) -> None:
        """An action with no reason and nothing to change in the boards (webhooks, keys)."""
        await self.admin.record(Audit(key, action, target, None, details))

    async def stop(self) -> None:
        for task in list(self._sweeps):
            task.cancel()
        await asyncio.gather(*self._sweeps, return_exceptions=True)

    # -- helpers ----------------------------------------------------------------------------

    def _config(self) -> BoardsConfig:
        config = self.service.config
        if config is None:
            raise Unavailable("the boards are not configured yet")
        return config

    def _check_user_id(self, user_id: str) -> None:
        if not is_valid_user_id(user_id):
            raise InvalidRequest(f"user_id must be {USER_ID_RULE}", code="invalid_user_id")

    async def _profile(self, user_id: str) -> UserProfile:
        self._check_user_id(user_id)
        profile = await self.service.store.profile(user_id)
        if profile is None:
            raise NotFound(f"there is no user '{user_id}'", code="unknown_user")
        return profile

    async def _take_up(self, done: Moderated) -> None:
        """Bring the current periods' rank indexes up to what the action changed."""
        for moved in done.moved:
            await self._move(moved)

    async def _move(self, moved: Moved) -> None:
        served = self.service.boards.get(moved.board)
        if served is None or served.period.id != moved.period:
            return  # an archive, or a board not served here: read from the store
        index = served.index
        try:
            if moved.standing is None:
                top = await index.remove(moved.period, moved.user_id, moved.version)
                score = 0
            else:
                top = await index.apply(moved.period, moved.standing)
                score = moved.standing.score
        except Unavailable as exc:
            # The store has it; a shared index heals from the store (the keeper rebuilds it).
            log.warning("rank index unavailable after a moderation action: %s", exc)
            return
        await self.service.publish(served, top, moved.user_id, score)
        await self.service.unsettled(served, moved.period)

    async def _forget(self, user_id: str) -> None:
        for served in list(self.service.boards.values()):
            try:
                top = await served.index.forget(user_id)
            except Unavailable as exc:
                log.warning("rank index unavailable during an erasure: %s", exc)
                continue
            await self.service.publish(served, top, "", 0)
            await self.service.unsettled(served, served.period.id)

    async def _forget_later(self, user_id: str) -> None:
        await asyncio.sleep(self.forget_again_after)
        await self._forget(user_id)
        # What a late update's top change queued meanwhile (webhook deliveries about them).
        for forget in self.forgetters:
            await forget(user_id)


def _check_limit(limit: int, most: int) -> None:
    if not 1 <= limit <= most:
        raise InvalidRequest(f"limit must be 1-{most}")
