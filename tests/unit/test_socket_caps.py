"""Socket admission caps and the client frame rate."""

from __future__ import annotations

from scoreboard.web.live.caps import MIN_FRAME_BURST, FrameBudget, SocketCaps


def test_the_address_cap_refuses_and_counts_nothing_then_frees_on_release() -> None:
    caps = SocketCaps(max_total=None, max_per_address=2)
    assert caps.admit("a") is None
    assert caps.admit("a") is None
    assert caps.admit("a") == "address_cap"
    assert caps.admit("b") is None
    assert caps.open == 3
    caps.release("a")
    assert caps.admit("a") is None


def test_the_process_cap_counts_every_address() -> None:
    caps = SocketCaps(max_total=2, max_per_address=None)
    assert caps.admit("a") is None
    assert caps.admit("b") is None
    assert caps.admit("c") == "process_cap"
    caps.release("b")
    assert caps.admit("c") is None
    assert caps.open == 2


def test_no_caps_admit_everything() -> None:
    caps = SocketCaps(None, None)
    assert all(caps.admit("a") is None for _ in range(1000))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_50_frames_passes_even_at_a_low_rate_and_the_next_is_refused() -> None:
    clock = Clock()
    budget = FrameBudget(3, clock=clock)
    assert all(budget.take() for _ in range(MIN_FRAME_BURST))
    assert not budget.take()


def test_the_budget_refills_at_the_rate_and_never_past_the_burst() -> None:
    clock = Clock()
    budget = FrameBudget(10, burst=20, clock=clock)
    assert budget.take(20)
    assert not budget.take()  # empty (and the refused frame still counts)
    clock.now += 0.2  # two frames' worth, minus the one refused
    assert budget.take()
    assert not budget.take()
    clock.now += 3600  # a long quiet spell refills to the burst, not beyond
    assert budget.take(20)
    assert not budget.take()


def test_a_steady_flood_at_twice_the_rate_is_refused_within_burst_over_rate_seconds() -> None:
    clock = Clock()
    budget = FrameBudget(10, burst=50, clock=clock)
    sent = 0
    while budget.take():
        sent += 1
        clock.now += 1 / 20
    # Net drain of 10 frames a second from a bucket of 50: refused after about 5 s.
    assert 95 <= sent <= 105


def test_the_burst_is_at_least_the_rate() -> None:
    clock = Clock()
    budget = FrameBudget(200, clock=clock)
    assert budget.take(200)
    assert not budget.take()


def test_no_rate_allows_everything() -> None:
    budget = FrameBudget(None)
    assert all(budget.take() for _ in range(10_000))
