"""A clock a test sets by hand (house style: time is a dependency, never patched)."""

from __future__ import annotations


class FakeClock:
    """Call it for the time; set or advance ``now`` to move it. Starts far from 0, like a real
    clock, so that "60 s before" is still a positive time."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def at(self, seconds: float, *, since: float = 1_000_000.0) -> None:
        """Set the time to ``seconds`` after ``since`` (the default start)."""
        self.now = since + seconds
