"""Rate and velocity limits on score updates (429).

Three limits, each off when its setting is empty:

- ``SCOREBOARD_RATE_LIMIT_IP``: update requests per client address (``client_address``), any
  outcome. Checked **first**, before the body is read, so a flood from one address costs one
  counter check per request and nothing else.
- ``SCOREBOARD_RATE_LIMIT_USER``: update requests per user. Checked **after** the token is
  verified: an unauthenticated request cannot spend another user's budget, so no one can lock a
  user out by sending requests in their name. Requests that are then refused (409, 503) still
  count: the budget is for attempts.
- ``SCOREBOARD_VELOCITY_LIMIT``: at most N points per user in **any** 60 s. The points of an
  update are held from the moment they are reserved until exactly 60 s later; an update is
  refused when the points held plus its delta would pass N. Only points of an update that is
  **applied** count. The delta is reserved right before the store is asked (so concurrent
  updates cannot all squeeze through one remaining budget) and refunded if the update is
  refused afterwards (409, 503, anything). A refusal by the velocity limit itself takes
  nothing; neither does any update refused earlier (400, 401, 413, the other 429s), because
  they never reach the reservation. Negative deltas are not limited here. **A retry of an
  action is never refused by it** and draws no points: a reservation names its ``action_id``,
  and the same action and delta asked for again (concurrently, from any process) shares it
  while it is in the window (granted, nothing added); later, when the budget has no room, the
  store is asked whether the action was applied (one read, on refusals only) and the update
  goes on unreserved to get the replay's 200 (or, with another delta, the 409). A retry still
  counts as a request for the two request limits. A retried ``action_id`` that did reserve
  gets its points back (``UpdateResult.replayed``).

The order is therefore: address limit, body (400/413/408), token (401), user limit, velocity
reservation, commit. Request counts use ``limits``' moving-window strategy (exact: "100 per
minute" never lets 101 through in any 60 s). Velocity counts points (up to ``MAX_DELTA`` per
update), which ``limits``' moving window would store one entry per point for; it uses a
:class:`~scoreboard.ports.PointsWindow` instead, one entry per reservation. The points window
comes with each ``reserve`` call from the components (``bootstrap`` chooses it with the other
adapters: ``MemoryPointsWindow`` embedded, ``RedisPointsWindow`` scaled).

Storage: in-process memory in embedded mode (``adapters.limit_storage.LocalStorage``, O(1) per
hit; the library's own ``MemoryStorage`` cost 80-150 µs per update at a few thousand keys);
Redis (``SCOREBOARD_REDIS_URL``) otherwise, so a limit is global across processes. Each check is
one Redis round trip (a Lua script), atomic across processes; so is each velocity reservation.

**When the limiter's storage fails, updates are let through (fail open)**, with a WARNING line
(at most one per 10 s) and ``scoreboard_backend_errors_total{backend="rate_limit_storage"}``.
Rate limits guard against abuse, not correctness: every update is still authenticated and its
delta bounded, and the store stays the truth. Failing closed would turn a Redis outage into an
outage of all score updates. After a failure the limiter is skipped for one second instead of
each request waiting out a connection timeout.

A 429 carries ``Retry-After`` (whole seconds) and the separate ``RateLimit-Limit``,
``RateLimit-Remaining`` and ``RateLimit-Reset`` fields of the IETF
``draft-ietf-httpapi-ratelimit-headers`` (draft 06 and earlier) for the limit that refused; the
error code names it. For the request limits Reset is the seconds until the window frees
capacity; for velocity, the seconds until enough of the user's points have left the window for
this delta to fit (if nobody else reserves meanwhile), the full 60 s for a delta larger than N.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, TypeVar

import limits
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from scoreboard.errors import ScoreboardError, Unavailable
from scoreboard.model import DEFAULT_METRIC, PointsTicket
from scoreboard.ports import PointsWindow
from scoreboard.settings import Settings
from scoreboard.web.metrics import Metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

_PAUSE_AFTER_ERROR = 1.0
# RuntimeError: uvloop's "unable to perform operation on <TCPTransport closed=True>" when Redis
# resets a connection under load (tests/faults); ``limits`` does not wrap it. Unavailable: the
# points window's failure (its adapters raise nothing else).
_STORAGE_ERRORS = (
    StorageError,
    Unavailable,
    ConnectionError,
    OSError,
    TimeoutError,
    RuntimeError,
)
_LOG_EVERY = 10.0
VELOCITY_SPAN = 60.0
"""Seconds a reserved point counts against the velocity limit."""


class RateLimited(ScoreboardError):
    """Refused by a limit (429); ``limit`` names which one."""

    code = "rate_limited"

    def __init__(
        self, message: str, *, code: str, limit: int, remaining: int, reset: float
    ) -> None:
        super().__init__(message, code=code)
        self.limit = limit
        self.remaining = remaining
        self.reset = reset

    def headers(self) -> dict[str, str]:
        seconds = str(max(1, math.ceil(self.reset)))
        return {
            "Retry-After": seconds,
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": seconds,
        }


class Reservation:
    """Velocity points held for one update; ``refund()`` gives them back, once."""

    def __init__(self, give_back: Callable[[], Awaitable[None]] | None) -> None:
        self._give_back = give_back

    async def refund(self) -> None:
        give_back, self._give_back = self._give_back, None
        if give_back is not None:
            await give_back()


_NOTHING_RESERVED = Reservation(None)


class UpdateLimits:
    """The limits of the update route over one storage. See the module docstring."""

    def __init__(
        self,
        storage: Storage,
        window: PointsWindow,
        *,
        per_user: str | None,
        per_address: str | None,
        velocity: int | None,
        metrics: Metrics | None = None,
    ) -> None:
        self.storage = storage
        self.window = window
        self._moving = MovingWindowRateLimiter(storage)
        self._per_user = limits.parse(per_user) if per_user else None
        self._per_address = limits.parse(per_address) if per_address else None
        self._velocity = velocity or None
        self._metrics = metrics
        self._paused_until = 0.0
        self._logged_at = -math.inf

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        storage: Storage,
        window: PointsWindow,
        metrics: Metrics | None = None,
    ) -> UpdateLimits:
        return cls(
            storage,
            window,
            per_user=settings.rate_limit_user,
            per_address=settings.rate_limit_ip,
            velocity=settings.velocity_limit,
            metrics=metrics,
        )

    async def check_address(self, address: str) -> None:
        """Count one update request from ``address``; ``RateLimited`` over the limit."""
        if self._per_address is not None:
            await self._count(self._per_address, "address", address, "rate_limited_address")

    async def check_user(self, user_id: str) -> None:
        """Count one authenticated update request of ``user_id``."""
        if self._per_user is not None:
            await self._count(self._per_user, "user", user_id, "rate_limited_user")

    async def reserve(
        self,
        user_id: str,
        delta: int,
        *,
        limit: int | Literal["settings"] | None = "settings",
        metric: str = DEFAULT_METRIC,
        action_id: str | None = None,
        applied: Callable[[], Awaitable[bool]] | None = None,
    ) -> Reservation:
        """Reserve ``delta`` points of ``user_id``'s velocity budget in the window before
        applying the update. The caller refunds the reservation when the update was not applied
        (it raised) or was a retry (it added nothing); ``RateLimited`` when the points the user
        holds in the last 60 s plus ``delta`` would pass the limit.

        A retry adds no points and is never refused: an update with an ``action_id`` shares the
        reservation of the same action and delta while that one is in the window, and when the
        budget has no room, ``applied()`` is asked whether the action was applied already (a
        store read, on refusals only); then it goes on unreserved, to be answered as the replay
        (or the conflict) it is.

        Each metric has a budget of its own: ``limit`` is the metric's ``velocity_limit``
        (``None``: none; by default ``SCOREBOARD_VELOCITY_LIMIT``, the ``points`` metric's)."""
        if limit == "settings":
            limit = self._velocity
        if limit is None or delta <= 0:
            return _NOTHING_RESERVED
        window = self.window
        key = user_id if metric == DEFAULT_METRIC else f"{metric}:{user_id}"
        answer = await self._guard(
            window.reserve, key, delta, limit=limit, span=VELOCITY_SPAN, action_id=action_id
        )
        if answer is None:  # storage down: fail open
            return _NOTHING_RESERVED
        if answer.ticket is not None:
            return Reservation(functools.partial(self._refund, window, answer.ticket))
        if applied is not None and await applied():
            return _NOTHING_RESERVED
        if self._metrics is not None:
            self._metrics.rate_limited.labels("velocity").inc()
        raise RateLimited(
            f"too many points: at most {limit} points per user in any {VELOCITY_SPAN:g} s;"
            " retry later",
            code="velocity_limited",
            limit=limit,
            remaining=max(0, limit - answer.used),
            reset=answer.reset,
        )

    async def forget(self, user_id: str, metrics: Iterable[str]) -> None:
        """Drop the user's counters and velocity windows (an erasure): nothing kept under
        their id. Fails open like every limit: a storage that is down keeps them until they
        expire (a minute)."""
        if self._per_user is not None:
            await self._guard(self._moving.clear, self._per_user, "user", user_id)
        for metric in metrics:
            key = user_id if metric == DEFAULT_METRIC else f"{metric}:{user_id}"
            await self._guard(self.window.forget, key)

    async def _refund(self, window: PointsWindow, ticket: PointsTicket) -> None:
        await self._guard(window.refund, ticket)

    async def _count(self, item: limits.RateLimitItem, name: str, identity: str, code: str) -> None:
        allowed = await self._guard(self._moving.hit, item, name, identity)
        if allowed is not False:
            return
        stats = await self._guard(self._moving.get_window_stats, item, name, identity)
        reset = max(0.0, stats.reset_time - time.time()) if stats else float(item.get_expiry())
        remaining = stats.remaining if stats else 0
        if self._metrics is not None:
            self._metrics.rate_limited.labels(name).inc()
        raise RateLimited(
            f"too many updates: at most {item} per {name}; retry later",
            code=code,
            limit=item.amount,
            remaining=remaining,
            reset=reset,
        )

    async def _guard(
        self, call: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T | None:
        """``call(*args, **kwargs)``'s result, or ``None`` when the storage failed (or failed a
        moment ago)."""
        now = time.monotonic()
        if now < self._paused_until:
            return None
        try:
            return await call(*args, **kwargs)
        except _STORAGE_ERRORS as exc:
            self._paused_until = now + _PAUSE_AFTER_ERROR
            if self._metrics is not None:
                self._metrics.backend_errors.labels("rate_limit_storage").inc()
            if now - self._logged_at >= _LOG_EVERY:
                self._logged_at = now
                log.warning(
                    "rate limiter storage failed; letting updates through unlimited: %s",
                    exc,
                    extra={"event": "rate_limit_storage_error"},
                )
            return None

    async def ready(self) -> bool:
        """Whether the storage answers (for ``/readyz``)."""
        try:
            return bool(await self.storage.check())
        except Exception:
            return False


class RequestLimit:
    """A limit on one kind of request per client address (exports), over the same storage as
    the update limits; fails open like them."""

    def __init__(self, storage: Storage, limit: str | None, name: str) -> None:
        self._moving = MovingWindowRateLimiter(storage)
        self._item = limits.parse(limit) if limit else None
        self.name = name

    async def check(self, address: str) -> None:
        item = self._item
        if item is None:
            return
        try:
            if await self._moving.hit(item, self.name, address):
                return
            stats = await self._moving.get_window_stats(item, self.name, address)
        except _STORAGE_ERRORS:
            return
        raise RateLimited(
            f"too many {self.name}s: at most {item} per address; retry later",
            code=f"rate_limited_{self.name}",
            limit=item.amount,
            remaining=0,
            reset=max(0.0, stats.reset_time - time.time()),
        )
