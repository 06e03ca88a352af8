"""Socket admission caps and the client frame rate."""

from __future__ import annotations

import pytest

from scoreboard.web import socket_caps
from scoreboard.web.socket_caps import FrameRate, SocketCaps


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


def test_frames_over_the_rate_in_one_second_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(socket_caps.time, "monotonic", lambda: now[0])
    rate = FrameRate(3)
    assert [rate.allow() for _ in range(4)] == [True, True, True, False]
    now[0] += 1.0  # a new second
    assert rate.allow()
    assert FrameRate(None).allow()
