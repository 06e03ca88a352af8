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
        (demo.wait_arg, "0", 0.0),
        (demo.wait_arg, "600", 600.0),
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
        (demo.wait_arg, "-1"),
        (demo.wait_arg, "601"),
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


def test_measurements_stay_in_range_around_each_players_typical_value() -> None:
    rng = random.Random(4)
    players = demo.cast(20, rng)
    laps = {p.user_id: [demo.measurement(p, rng, 1, 3_600_000) for _ in range(50)] for p in players}
    values = [v for vs in laps.values() for v in vs]
    assert min(values) >= 1
    assert max(values) <= 3_600_000
    for player_laps in laps.values():  # one player's laps are alike: within 10% of a typical
        assert max(player_laps) <= min(player_laps) * 1.23
    best = min(players, key=lambda p: p.skill)
    worst = max(players, key=lambda p: p.skill)
    # Lower is better for a lap: the most skilled player's laps are the shortest.
    assert max(laps[worst.user_id]) < min(laps[best.user_id])
    assert set(demo.measurement(p, rng, 5, 5) for p in players) == {5}


def test_wait_polls_until_the_server_answers_then_gives_up_on_time() -> None:
    """Nothing listens on the port: the demo waits its ``--wait`` (by the clock it is given),
    then says it cannot reach the server."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    with pytest.raises(demo.DemoError, match="cannot reach"):
        demo.run(
            "http://127.0.0.1:9",
            secret=b"x" * 32,
            duration=1,
            wait=3,
            out=io.StringIO(),
            clock=lambda: now[0],
            sleep=sleep,
        )
    assert 3 <= now[0] < 3.5
