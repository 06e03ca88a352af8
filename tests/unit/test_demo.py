"""The demo's pure parts: its cast, its points, its pacing and its argument checks."""

from __future__ import annotations

import argparse
import io
import random

import pytest

from scoreboard import demo


def test_the_cast_has_distinct_valid_ids_and_names() -> None:
    players = demo.cast(300, random.Random(1))
    assert len({p.user_id for p in players}) == 300
    assert players[0].user_id == "demo-001"
    assert all(p.name and p.activity >= 1 and p.skill > 0 for p in players)
    assert len({p.name for p in players[:20]}) == 20  # the first screenful reads as people


def test_points_stay_within_the_accepted_range() -> None:
    rng = random.Random(2)
    players = demo.cast(20, rng)
    wide = [demo.points(p, rng, 1, 1000) for p in players for _ in range(200)]
    assert min(wide) >= 1
    assert max(wide) <= 1000
    assert max(wide) >= 100  # big wins happen
    assert sorted(wide)[len(wide) // 2] <= 50  # but most actions are small
    narrow = [demo.points(p, rng, 3, 7) for p in players for _ in range(50)]
    assert set(narrow) <= set(range(3, 8))


def test_the_pacer_spaces_requests_at_the_rate() -> None:
    pacer = demo.Pacer(rate=4, start=100.0)
    due = []
    for _ in range(5):
        due.append(pacer.due())
        pacer.advance(pacer.due() + 0.01)  # each request took 10 ms
    assert due == [100.0, 100.25, 100.5, 100.75, 101.0]


def test_the_pacer_does_not_burst_after_falling_behind() -> None:
    pacer = demo.Pacer(rate=10, start=0.0)
    pacer.advance(5.0)  # the first request hung for 5 s
    assert pacer.due() == 5.0  # the schedule restarts now; 49 requests are not owed
    pacer.advance(5.0)
    assert pacer.due() == pytest.approx(5.1)


def test_the_tally_line_says_what_happened() -> None:
    tally = demo.Tally()
    for outcome in ("ok", "ok", "429", "unreachable", "429"):
        tally.record(outcome)
    tally.leader = ("Ada Lovelace", 12345)
    assert (
        tally.line(3.2)
        == "    3s  sent 5  ok 2  failed 429 2, unreachable 1  leader Ada Lovelace (12,345)"
    )


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (demo.users_arg, "1", 1),
        (demo.users_arg, "1000", 1000),
        (demo.rate_arg, "0.5", 0.5),
        (demo.rate_arg, "1000", 1000.0),
        (demo.duration_arg, "86400", 86400.0),
    ],
)
def test_arguments_in_range_are_accepted(parse: object, text: str, value: float) -> None:
    assert callable(parse)
    assert parse(text) == value


@pytest.mark.parametrize(
    ("parse", "text"),
    [
        (demo.users_arg, "0"),
        (demo.users_arg, "1001"),
        (demo.users_arg, "2.5"),
        (demo.users_arg, "many"),
        (demo.rate_arg, "0"),
        (demo.rate_arg, "-1"),
        (demo.rate_arg, "1000.1"),
        (demo.rate_arg, "nan"),
        (demo.rate_arg, "inf"),
        (demo.duration_arg, "0"),
        (demo.duration_arg, "86401"),
    ],
)
def test_arguments_out_of_range_are_refused(parse: object, text: str) -> None:
    assert callable(parse)
    with pytest.raises(argparse.ArgumentTypeError):
        parse(text)


@pytest.mark.parametrize("url", ["ftp://example.com", "localhost:8000", "http://"])
def test_a_url_that_is_not_http_is_refused_before_anything_is_sent(url: str) -> None:
    with pytest.raises(demo.DemoError, match="--url"):
        demo.run(url, secret=b"x" * 32, duration=1, out=io.StringIO())
