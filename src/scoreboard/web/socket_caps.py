"""Caps on live-channel sockets: per process, per client address, and client frames per second.

The counts are this process's (each process holds its own sockets); a deployment of N processes
allows N times ``SCOREBOARD_WS_MAX_CONNECTIONS`` in all, and a client behind the load balancer
up to N times ``SCOREBOARD_WS_MAX_PER_ADDRESS`` at worst. That keeps a socket's admission free of
any network round trip, and what the caps protect (a process's memory and file descriptors) is
per process anyway.
"""

from __future__ import annotations

import time
from collections import Counter


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


class FrameRate:
    """At most ``limit`` frames in any one-second window starting at a counted frame."""

    __slots__ = ("_count", "_limit", "_started")

    def __init__(self, limit: int | None) -> None:
        self._limit = limit
        self._started = 0.0
        self._count = 0

    def allow(self) -> bool:
        """Count one client frame; ``False`` once the socket is over its rate."""
        if self._limit is None:
            return True
        now = time.monotonic()
        if now - self._started >= 1.0:
            self._started = now
            self._count = 0
        self._count += 1
        return self._count <= self._limit
