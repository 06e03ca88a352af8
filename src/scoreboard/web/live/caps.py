"""Caps on live-channel sockets: per process, per client address, and a budget of client frames.

The counts are this process's (each process holds its own sockets); a deployment of N processes
allows N times ``SCOREBOARD_WS_MAX_CONNECTIONS`` in all, and a client behind the load balancer
up to N times ``SCOREBOARD_WS_MAX_PER_ADDRESS`` at worst. That keeps a socket's admission free of
any network round trip, and what the caps protect (a process's memory and file descriptors) is
per process anyway.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable


class SocketCaps:
    """Admission of sockets. ``admit`` before accept; ``release`` exactly once per admitted."""

    def __init__(self, max_total: int | None, max_per_address: int | None) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self._per_address: Counter[str] = Counter()
        self.open = 0

    def admit(self, address: str) -> str | None:
        """Count the socket in and return ``None``, or return why it is refused
        (``process_cap`` or ``address_cap``) and count nothing."""
        if self.max_total is not None and self.open >= self.max_total:
            return "process_cap"
        if self.max_per_address is not None and self._per_address[address] >= self.max_per_address:
            return "address_cap"
        self.open += 1
        self._per_address[address] += 1
        return None

    def release(self, address: str) -> None:
        self.open -= 1
        self._per_address[address] -= 1
        if self._per_address[address] <= 0:
            del self._per_address[address]


MIN_FRAME_BURST = 50
"""The least burst of client frames a socket may send at once, whatever the rate: a page that
restores 20 subscriptions after a reconnect must not be cut off."""


class FrameBudget:
    """A token bucket over client frames: on average ``rate`` a second, at most ``burst`` at
    once (``max(rate, MIN_FRAME_BURST)`` unless given). ``rate=None`` allows everything.

    Every frame counts, control frames and continuation fragments included, where the server
    sees frames (``scoreboard.server``); the app, which sees only whole messages, uses the same
    budget per message where the server does not. ``clock`` is a dependency so that tests can
    place frames at any instant.
    """

    __slots__ = ("_burst", "_clock", "_rate", "_tokens", "_updated")

    def __init__(
        self,
        rate: float | None,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = float(burst if burst is not None else max(rate or 0, MIN_FRAME_BURST))
        self._clock = clock
        self._tokens = self._burst
        self._updated = clock()

    def take(self, frames: int = 1) -> bool:
        """Count ``frames`` client frames; ``False`` once the socket is over its budget (the
        caller closes it: nothing is owed back)."""
        if self._rate is None:
            return True
        now = self._clock()
        tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        self._tokens = tokens - frames
        return self._tokens >= 0
