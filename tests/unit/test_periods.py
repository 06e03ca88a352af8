"""Board periods: the period of an instant, DST included, and the strict form of period ids.

Instants are passed in, never read from a clock, so every boundary below is exercised at the
exact microsecond. Zone data: the transitions used here are long settled in the tz database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scoreboard.errors import InvalidRequest
from scoreboard.periods import (
    ALL_TIME,
    FIRST_SEASON,
    MAX_SEASON,
    MAX_YEAR,
    MIN_YEAR,
    RESETS,
    InvalidPeriodId,
    Period,
    UnknownTimezone,
    following,
    next_boundary,
    parse_period_id,
    period_at,
    period_bounds,
    preceding,
    rollover,
    season_after,
    timezones,
    zone,
)

US = timedelta(microseconds=1)
HOUR = timedelta(hours=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def hours(period: Period) -> float:
    assert period.starts_at is not None
    assert period.ends_at is not None
    return (period.ends_at - period.starts_at) / HOUR


# -- the period of an instant --------------------------------------------------------------------

# (reset, zone, first instant of the period (UTC), first instant of the next, id, hours)
BOUNDARIES = [
    ("daily", "UTC", utc(2026, 11, 30), utc(2026, 12, 1), "2026-11-30", 24),
    ("daily", "UTC", utc(2026, 12, 31), utc(2027, 1, 1), "2026-12-31", 24),
    # Europe/Berlin: CET (+1) before 2026-03-29 02:00, CEST (+2) until 2026-10-25 03:00.
    ("daily", "Europe/Berlin", utc(2026, 3, 27, 23), utc(2026, 3, 28, 23), "2026-03-28", 24),
    ("daily", "Europe/Berlin", utc(2026, 3, 28, 23), utc(2026, 3, 29, 22), "2026-03-29", 23),
    ("daily", "Europe/Berlin", utc(2026, 3, 29, 22), utc(2026, 3, 30, 22), "2026-03-30", 24),
    ("daily", "Europe/Berlin", utc(2026, 10, 24, 22), utc(2026, 10, 25, 23), "2026-10-25", 25),
    ("daily", "Europe/Berlin", utc(2026, 10, 25, 23), utc(2026, 10, 26, 23), "2026-10-26", 24),
    # Australia/Lord_Howe: +11 to +10:30 at 02:00 on 2026-04-05, back at 02:00 on 2026-10-04.
    (
        "daily",
        "Australia/Lord_Howe",
        utc(2026, 4, 4, 13),
        utc(2026, 4, 5, 13, 30),
        "2026-04-05",
        24.5,
    ),
    (
        "daily",
        "Australia/Lord_Howe",
        utc(2026, 10, 3, 13, 30),
        utc(2026, 10, 4, 13),
        "2026-10-04",
        23.5,
    ),
    # America/Santiago: midnight skipped on 2026-09-06 (00:00 -04 becomes 01:00 -03), the day
    # starts at the jump; on 2026-04-05 the clock goes back at 24:00, so 04-04 has 25 hours.
    ("daily", "America/Santiago", utc(2026, 9, 5, 4), utc(2026, 9, 6, 4), "2026-09-05", 24),
    ("daily", "America/Santiago", utc(2026, 9, 6, 4), utc(2026, 9, 7, 3), "2026-09-06", 23),
    ("daily", "America/Santiago", utc(2026, 4, 4, 3), utc(2026, 4, 5, 4), "2026-04-04", 25),
    # America/Havana: midnight skipped on 2025-03-09; on 2025-11-02 01:00 -04 becomes 00:00 -05,
    # so midnight happens twice and the day starts at the first (04:00 UTC).
    ("daily", "America/Havana", utc(2025, 3, 9, 5), utc(2025, 3, 10, 4), "2025-03-09", 23),
    ("daily", "America/Havana", utc(2025, 11, 1, 4), utc(2025, 11, 2, 4), "2025-11-01", 24),
    ("daily", "America/Havana", utc(2025, 11, 2, 4), utc(2025, 11, 3, 5), "2025-11-02", 25),
    # Asia/Beirut: 00:00 +02 becomes 01:00 +03 on 2025-03-30; 24:00 +03 becomes 23:00 +02 on 10-25.
    ("daily", "Asia/Beirut", utc(2025, 3, 29, 22), utc(2025, 3, 30, 21), "2025-03-30", 23),
    ("daily", "Asia/Beirut", utc(2025, 10, 24, 21), utc(2025, 10, 25, 22), "2025-10-25", 25),
    # America/St_Johns fell back at 00:01 to 23:01 of the day before (until 2011): 2010-11-07
    # starts at its first midnight; the hour after, whose wall clock shows 11-06 again, is 11-07.
    (
        "daily",
        "America/St_Johns",
        utc(2010, 11, 6, 2, 30),
        utc(2010, 11, 7, 2, 30),
        "2010-11-06",
        24,
    ),
    (
        "daily",
        "America/St_Johns",
        utc(2010, 11, 7, 2, 30),
        utc(2010, 11, 8, 3, 30),
        "2010-11-07",
        25,
    ),
    # America/Toronto jumped from 23:30 -05 to 00:30 -04 on 1919-03-31: the day starts at the
    # jump, its wall clock already half an hour past midnight.
    ("daily", "America/Toronto", utc(1919, 3, 30, 5), utc(1919, 3, 31, 4, 30), "1919-03-30", 23.5),
    ("daily", "America/Toronto", utc(1919, 3, 31, 4, 30), utc(1919, 4, 1, 4), "1919-03-31", 23.5),
    # Weeks start on Monday's first local instant.
    ("weekly", "UTC", utc(2026, 11, 30), utc(2026, 12, 7), "2026-W49", 168),
    ("weekly", "Europe/Berlin", utc(2026, 11, 29, 23), utc(2026, 12, 6, 23), "2026-W49", 168),
    ("weekly", "Europe/Berlin", utc(2026, 3, 22, 23), utc(2026, 3, 29, 22), "2026-W13", 167),
    ("weekly", "Europe/Berlin", utc(2026, 10, 18, 22), utc(2026, 10, 25, 23), "2026-W43", 169),
    # Asia/Tehran skipped midnight on Monday 2021-03-22 (00:00 +03:30 became 01:00 +04:30).
    ("weekly", "Asia/Tehran", utc(2021, 3, 21, 20, 30), utc(2021, 3, 28, 19, 30), "2021-W12", 167),
    # Months start on the 1st's first local instant.
    ("monthly", "UTC", utc(2026, 11, 1), utc(2026, 12, 1), "2026-11", 30 * 24),
    ("monthly", "UTC", utc(2026, 12, 1), utc(2027, 1, 1), "2026-12", 31 * 24),
    ("monthly", "UTC", utc(2024, 2, 1), utc(2024, 3, 1), "2024-02", 29 * 24),
    ("monthly", "UTC", utc(2026, 2, 1), utc(2026, 3, 1), "2026-02", 28 * 24),
    ("monthly", "UTC", utc(2000, 2, 1), utc(2000, 3, 1), "2000-02", 29 * 24),
    ("monthly", "UTC", utc(2100, 2, 1), utc(2100, 3, 1), "2100-02", 28 * 24),
    (
        "monthly",
        "Europe/Berlin",
        utc(2026, 2, 28, 23),
        utc(2026, 3, 31, 22),
        "2026-03",
        31 * 24 - 1,
    ),
    (
        "monthly",
        "Europe/Berlin",
        utc(2026, 9, 30, 22),
        utc(2026, 10, 31, 23),
        "2026-10",
        31 * 24 + 1,
    ),
    # America/Asuncion skipped midnight on Sunday 2023-10-01 (00:00 -04 became 01:00 -03).
    (
        "monthly",
        "America/Asuncion",
        utc(2023, 10, 1, 4),
        utc(2023, 11, 1, 3),
        "2023-10",
        31 * 24 - 1,
    ),
]


@pytest.mark.parametrize(("reset", "tz", "start", "end", "period_id", "length"), BOUNDARIES)
def test_the_period_of_an_instant_around_its_boundaries(
    reset: str, tz: str, start: datetime, end: datetime, period_id: str, length: float
) -> None:
    expected = Period(period_id, start, end)
    assert hours(expected) == length
    for instant in (start, start + US, end - US):
        assert period_at(reset, tz, instant) == expected  # type: ignore[arg-type]
    assert period_at(reset, tz, start - US).id != period_id  # type: ignore[arg-type]
    assert period_at(reset, tz, end).id != period_id  # type: ignore[arg-type]
    assert period_at(reset, tz, end).starts_at == end  # type: ignore[arg-type]
    assert period_bounds(reset, tz, period_id) == expected  # type: ignore[arg-type]


def test_an_instant_whose_local_date_lags_belongs_to_the_period_already_started() -> None:
    # 2010-11-07 03:00 UTC is 23:30 of 11-06 on the St. John's wall clock, for the second time.
    instant = utc(2010, 11, 7, 3)
    assert instant.astimezone(zone("America/St_Johns")).date() == date(2010, 11, 6)
    assert period_at("daily", "America/St_Johns", instant).id == "2010-11-07"


def test_a_day_skipped_whole_is_an_empty_period_that_no_instant_belongs_to() -> None:
    # Pacific/Apia crossed the date line: 2011-12-29 24:00 -10 was 2011-12-31 00:00 +14.
    jump = utc(2011, 12, 30, 10)
    assert period_bounds("daily", "Pacific/Apia", "2011-12-30") == Period("2011-12-30", jump, jump)
    assert period_at("daily", "Pacific/Apia", jump - US).id == "2011-12-29"
    assert period_at("daily", "Pacific/Apia", jump).id == "2011-12-31"
    assert following("daily", "Pacific/Apia", "2011-12-29").id == "2011-12-31"
    assert preceding("daily", "Pacific/Apia", "2011-12-31").id == "2011-12-29"
    assert following("daily", "Pacific/Apia", "2011-12-30").id == "2011-12-31"


@pytest.mark.parametrize(
    ("day", "week"),
    [
        (date(2020, 12, 31), "2020-W53"),
        (date(2021, 1, 3), "2020-W53"),  # a Sunday: still the 2020 week-year
        (date(2021, 1, 4), "2021-W01"),
        (date(2024, 12, 29), "2024-W52"),
        (date(2024, 12, 30), "2025-W01"),  # a Monday in December: the 2025 week-year
        (date(2025, 12, 28), "2025-W52"),  # 2025 has no week 53
        (date(2025, 12, 29), "2026-W01"),
        (date(2026, 12, 31), "2026-W53"),
        (date(2027, 1, 3), "2026-W53"),
        (date(2027, 1, 4), "2027-W01"),
    ],
)
def test_weeks_are_iso_weeks_of_the_week_numbering_year(day: date, week: str) -> None:
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    period = period_at("weekly", "UTC", noon)
    assert period.id == week
    assert period.starts_at is not None
    assert period.starts_at.weekday() == 0


def test_the_zone_decides_the_period_not_the_utc_date() -> None:
    instant = utc(2026, 11, 29, 23, 30)  # Monday 00:30 in Berlin, still Sunday in UTC
    assert period_at("daily", "UTC", instant).id == "2026-11-29"
    assert period_at("daily", "Europe/Berlin", instant).id == "2026-11-30"
    assert period_at("weekly", "UTC", instant).id == "2026-W48"
    assert period_at("weekly", "Europe/Berlin", instant).id == "2026-W49"
    assert period_at("monthly", "Pacific/Kiritimati", utc(2026, 11, 30, 10)).id == "2026-12"


def test_instants_in_any_offset_are_the_same_instant() -> None:
    berlin = timezone(timedelta(hours=1))
    local = datetime(2026, 11, 30, 0, 30, tzinfo=berlin)
    assert period_at("daily", "UTC", local) == period_at("daily", "UTC", local.astimezone(UTC))
    assert period_at("daily", "UTC", local).id == "2026-11-29"


def test_a_never_board_has_one_unbounded_period() -> None:
    for instant in (utc(1970, 1, 1), utc(2026, 11, 30, 12), utc(9000, 1, 1)):
        assert period_at("never", "Europe/Berlin", instant) == ALL_TIME
        assert next_boundary("never", "Europe/Berlin", instant) is None
    assert ALL_TIME.as_dict() == {"id": "all", "starts_at": None, "ends_at": None}
    assert period_bounds("never", "UTC", "all") == ALL_TIME


def test_manual_periods_are_not_computed() -> None:
    with pytest.raises(ValueError, match="manual"):
        period_at("manual", "UTC", utc(2026, 1, 1))
    with pytest.raises(ValueError, match="manual"):
        period_bounds("manual", "UTC", "1")
    assert next_boundary("manual", "UTC", utc(2026, 1, 1)) is None


@pytest.mark.parametrize("function", [following, preceding])
@pytest.mark.parametrize(("reset", "period_id"), [("never", "all"), ("manual", "1")])
def test_only_clock_resets_have_neighbours(function: object, reset: str, period_id: str) -> None:
    with pytest.raises(ValueError, match="no clock periods"):
        function(reset, "UTC", period_id)  # type: ignore[operator]


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        period_at("daily", "UTC", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        next_boundary("manual", "UTC", datetime(2026, 1, 1))


def test_instants_outside_the_supported_years_are_refused() -> None:
    with pytest.raises(ValueError, match="1900 to 9998"):
        period_at("daily", "UTC", utc(1899, 12, 31, 23))
    with pytest.raises(ValueError, match="1900 to 9998"):
        period_at("monthly", "UTC", utc(9999, 1, 1))
    with pytest.raises(ValueError, match="1900 to 9998"):
        period_at("daily", "Pacific/Kiritimati", datetime.max.replace(tzinfo=UTC))
    with pytest.raises(ValueError, match="1900 to 9998"):
        period_at("daily", "Etc/GMT+12", datetime.min.replace(tzinfo=UTC))
    assert period_at("daily", "UTC", utc(1900, 1, 1)).id == "1900-01-01"
    assert period_at("daily", "UTC", utc(9998, 12, 31, 23)).id == "9998-12-31"


# -- neighbours and the next boundary ------------------------------------------------------------


@pytest.mark.parametrize(
    ("reset", "before", "after"),
    [
        ("daily", "2024-02-28", "2024-02-29"),
        ("daily", "2024-02-29", "2024-03-01"),
        ("daily", "2026-02-28", "2026-03-01"),
        ("daily", "2100-02-28", "2100-03-01"),
        ("daily", "2026-12-31", "2027-01-01"),
        ("daily", "2026-04-30", "2026-05-01"),
        ("weekly", "2020-W53", "2021-W01"),
        ("weekly", "2025-W52", "2026-W01"),
        ("weekly", "2026-W52", "2026-W53"),
        ("weekly", "2026-W53", "2027-W01"),
        ("monthly", "2026-11", "2026-12"),
        ("monthly", "2026-12", "2027-01"),
        ("monthly", "2027-01", "2027-02"),
    ],
)
def test_following_and_preceding(reset: str, before: str, after: str) -> None:
    for tz in ("UTC", "Europe/Berlin", "America/Santiago"):
        later = following(reset, tz, before)  # type: ignore[arg-type]
        earlier = preceding(reset, tz, after)  # type: ignore[arg-type]
        assert later.id == after
        assert earlier.id == before
        assert later == period_bounds(reset, tz, after)  # type: ignore[arg-type]
        assert earlier.ends_at == later.starts_at


def test_neighbours_stop_at_the_supported_years() -> None:
    with pytest.raises(ValueError, match="1900 to 9998"):
        following("daily", "UTC", "9998-12-31")
    with pytest.raises(ValueError, match="1900 to 9998"):
        preceding("monthly", "UTC", "1900-01")
    with pytest.raises(ValueError, match="1900 to 9998"):
        preceding("weekly", "UTC", "1900-W01")


def test_neighbours_of_a_malformed_id_are_an_invalid_period() -> None:
    with pytest.raises(InvalidPeriodId):
        following("daily", "UTC", "2026-W49")
    with pytest.raises(InvalidPeriodId):
        preceding("weekly", "UTC", "2026-W54")


def test_the_next_boundary_is_the_end_of_the_current_period() -> None:
    assert next_boundary("daily", "Europe/Berlin", utc(2026, 3, 29, 12)) == utc(2026, 3, 29, 22)
    assert next_boundary("daily", "Europe/Berlin", utc(2026, 3, 29, 22) - US) == utc(
        2026, 3, 29, 22
    )
    # At the boundary itself the new period has begun: the next boundary is a day away.
    assert next_boundary("daily", "Europe/Berlin", utc(2026, 3, 29, 22)) == utc(2026, 3, 30, 22)
    assert next_boundary("weekly", "UTC", utc(2026, 12, 2)) == utc(2026, 12, 7)
    assert next_boundary("monthly", "UTC", utc(2026, 12, 2)) == utc(2027, 1, 1)


# -- properties over zones and instants ----------------------------------------------------------

TRICKY_ZONES = [
    "UTC",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "America/Santiago",
    "America/Havana",
    "America/St_Johns",
    "America/Toronto",
    "Asia/Beirut",
    "Asia/Tehran",
    "Asia/Kathmandu",
    "Pacific/Apia",
    "Pacific/Kiritimati",
    "America/Adak",
]
instants = st.datetimes(
    min_value=datetime(1900, 3, 1),  # naive bounds (hypothesis); 1900-01 has no predecessor
    max_value=datetime(2100, 12, 24),
    timezones=st.just(UTC),
)
# Transitions are few: bias instants towards days with one.
transition_days = st.sampled_from([b[2] for b in BOUNDARIES] + [utc(2011, 12, 30, 10)]).flatmap(
    lambda moment: st.integers(-36 * 3600, 36 * 3600).map(lambda s: moment + timedelta(seconds=s))
)
clock_resets = st.sampled_from(["daily", "weekly", "monthly"])
zones = st.one_of(st.sampled_from(TRICKY_ZONES), st.sampled_from(sorted(timezones())))


@settings(max_examples=400, deadline=None)
@given(reset=clock_resets, tz=zones, instant=st.one_of(instants, transition_days))
@example(reset="daily", tz="America/St_Johns", instant=utc(2010, 11, 7, 3))
@example(reset="daily", tz="Pacific/Apia", instant=utc(2011, 12, 30, 10))
def test_periods_tile_time(reset: str, tz: str, instant: datetime) -> None:
    period = period_at(reset, tz, instant)  # type: ignore[arg-type]
    assert period.starts_at is not None
    assert period.ends_at is not None
    assert period.starts_at <= instant < period.ends_at
    assert instant in period
    assert parse_period_id(reset, period.id) == period.id  # type: ignore[arg-type]
    assert period_bounds(reset, tz, period.id) == period  # type: ignore[arg-type]
    assert period_at(reset, tz, period.starts_at) == period  # type: ignore[arg-type]
    assert period_at(reset, tz, period.ends_at - US) == period  # type: ignore[arg-type]
    after = following(reset, tz, period.id)  # type: ignore[arg-type]
    before = preceding(reset, tz, period.id)  # type: ignore[arg-type]
    assert after.starts_at == period.ends_at
    assert before.ends_at == period.starts_at
    assert period_at(reset, tz, period.ends_at) == after  # type: ignore[arg-type]
    assert period_at(reset, tz, period.starts_at - US) == before  # type: ignore[arg-type]
    assert preceding(reset, tz, after.id) == period  # type: ignore[arg-type]
    assert following(reset, tz, before.id) == period  # type: ignore[arg-type]
    assert next_boundary(reset, tz, instant) == period.ends_at  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(reset=clock_resets, tz=zones, instant=st.one_of(instants, transition_days))
def test_a_period_starts_at_the_first_instant_of_its_first_local_day(
    reset: str, tz: str, instant: datetime
) -> None:
    period = period_at(reset, tz, instant)  # type: ignore[arg-type]
    assert period.starts_at is not None
    if reset == "daily":
        first = date.fromisoformat(period.id)
    elif reset == "weekly":
        first = date.fromisocalendar(int(period.id[:4]), int(period.id[6:]), 1)
    else:
        first = date.fromisoformat(period.id + "-01")
    midnight = datetime(first.year, first.month, first.day)
    wall = period.starts_at.astimezone(zone(tz)).replace(tzinfo=None)
    wall_before = (period.starts_at - US).astimezone(zone(tz)).replace(tzinfo=None)
    assert wall_before < midnight <= wall
    # Midnight itself unless the clock jumped over it: then the first instant after the jump.
    assert wall == midnight or wall - wall_before > timedelta(minutes=1)


@settings(max_examples=200, deadline=None)
@given(day=st.dates(min_value=date(1900, 1, 2), max_value=date(2100, 12, 30)))
def test_a_utc_day_is_24_hours_and_named_by_its_date(day: date) -> None:
    period = period_at("daily", "UTC", datetime(day.year, day.month, day.day, tzinfo=UTC))
    assert period.id == day.isoformat()
    assert hours(period) == 24


# -- period ids ----------------------------------------------------------------------------------

VALID_IDS = [
    ("never", "all"),
    ("daily", "2026-11-30"),
    ("daily", "2024-02-29"),
    ("daily", "2000-02-29"),
    ("daily", "1900-01-01"),
    ("daily", "9998-12-31"),
    ("weekly", "2026-W49"),
    ("weekly", "2026-W05"),
    ("weekly", "2026-W53"),
    ("weekly", "2020-W53"),
    ("weekly", "2026-W01"),
    ("monthly", "2026-11"),
    ("monthly", "2026-01"),
    ("monthly", "9998-12"),
    ("manual", "1"),
    ("manual", "2"),
    ("manual", "10"),
    ("manual", str(MAX_SEASON)),
]

INVALID_IDS = [
    # another reset's form
    ("daily", "2026-W49"),
    ("daily", "2026-11"),
    ("daily", "all"),
    ("daily", "1"),
    ("weekly", "2026-11-30"),
    ("weekly", "2026-11"),
    ("monthly", "2026-11-30"),
    ("monthly", "2026-W49"),
    ("manual", "2026-11"),
    ("manual", "all"),
    ("never", "1"),
    ("never", "2026-11-30"),
    # no such date, week or month
    ("monthly", "2026-13"),
    ("monthly", "2026-00"),
    ("daily", "2026-02-30"),
    ("daily", "2026-02-29"),
    ("daily", "2100-02-29"),
    ("daily", "2026-04-31"),
    ("daily", "2026-11-00"),
    ("weekly", "2026-W54"),
    ("weekly", "2025-W53"),
    ("weekly", "2026-W00"),
    # not canonical
    ("weekly", "2026-W5"),
    ("weekly", "2026-w05"),
    ("weekly", "2026W05"),
    ("weekly", "2026-W05-1"),
    ("daily", "2026-1-30"),
    ("daily", "20261130"),
    ("daily", "2026/11/30"),
    ("daily", "2026-11-30T00:00"),
    ("monthly", "2026-1"),
    ("monthly", "02026-11"),
    ("monthly", "+2026-11"),
    ("never", "ALL"),
    ("never", "All"),
    ("manual", "0"),
    ("manual", "-1"),
    ("manual", "01"),
    ("manual", "+1"),
    ("manual", "1.0"),
    ("manual", "1e3"),
    ("manual", "1_0"),
    ("manual", str(MAX_SEASON + 1)),
    ("manual", "9" * 5000),
    # spaces and other characters around or inside
    ("daily", " 2026-11-30"),
    ("daily", "2026-11-30 "),
    ("daily", "2026-11-30\n"),
    ("weekly", "2026-W49\n"),
    ("monthly", "\t2026-11"),
    ("manual", " 1"),
    ("manual", "1\n"),
    ("never", "all "),
    ("daily", ""),
    ("manual", ""),
    ("never", ""),
    # digits of other scripts (\d and int() would take them)
    ("daily", "\uff12\uff10\uff12\uff16-11-30"),  # fullwidth
    ("monthly", "\u0662\u0660\u0662\u0666-\u0661\u0661"),  # Arabic-Indic
    ("weekly", "2026-W\uff105"),
    ("manual", "\u0661"),
    ("manual", "\uff11"),
    ("manual", "\u00b2"),  # superscript two: str.isdigit() says yes
    # outside the supported years
    ("daily", "1899-12-31"),
    ("daily", "9999-01-01"),
    ("weekly", "1899-W52"),
    ("monthly", "9999-01"),
    ("daily", "0000-01-01"),
]


@pytest.mark.parametrize(("reset", "text"), VALID_IDS)
def test_canonical_ids_are_valid(reset: str, text: str) -> None:
    assert parse_period_id(reset, text) == text  # type: ignore[arg-type]


@pytest.mark.parametrize(("reset", "text"), INVALID_IDS)
def test_anything_else_is_an_invalid_period(reset: str, text: str) -> None:
    with pytest.raises(InvalidPeriodId) as caught:
        parse_period_id(reset, text)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
    if reset != "manual" and reset != "never":
        with pytest.raises(InvalidPeriodId):
            period_bounds(reset, "UTC", text)  # type: ignore[arg-type]


def test_an_invalid_period_is_a_bad_request_with_its_own_code() -> None:
    with pytest.raises(InvalidPeriodId) as caught:
        parse_period_id("daily", "2026-W49")
    error = caught.value
    assert isinstance(error, ValueError)
    assert isinstance(error, InvalidRequest)
    assert error.code == "invalid_period"
    assert error.message == "'2026-W49' is not a daily period id: expected YYYY-MM-DD"


def test_a_period_id_that_is_not_a_string_is_invalid() -> None:
    with pytest.raises(InvalidPeriodId):
        parse_period_id("manual", 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidPeriodId):
        parse_period_id("daily", None)  # type: ignore[arg-type]


def test_an_unknown_reset_is_a_bug_not_a_bad_request() -> None:
    with pytest.raises(ValueError, match="reset must be one of") as caught:
        parse_period_id("hourly", "1")  # type: ignore[arg-type]
    assert not isinstance(caught.value, InvalidPeriodId)
    with pytest.raises(ValueError, match="reset must be one of"):
        period_at("hourly", "UTC", utc(2026, 1, 1))  # type: ignore[arg-type]
    assert RESETS == ("never", "daily", "weekly", "monthly", "manual")


def canonical(reset: str, text: str) -> str | None:
    """An independent statement of the canonical form: the id ``text`` would have, if any."""
    try:
        if reset == "daily":
            return date.fromisoformat(text).isoformat()
        if reset == "monthly":
            return date.fromisoformat(text + "-01").isoformat()[:7]
        if reset == "weekly":
            year, week = text.split("-W")
            day = date.fromisocalendar(int(year), int(week), 1)
            return f"{day.isocalendar().year:04d}-W{day.isocalendar().week:02d}"
        if reset == "manual":
            return str(int(text))
    except ValueError:
        return None
    return "all"


id_like = st.text(alphabet="0123456789-W all\uff11\u0662 \n+_", max_size=12)


@settings(max_examples=600)
@given(reset=st.sampled_from(RESETS), text=id_like)
def test_only_exact_canonical_text_parses(reset: str, text: str) -> None:
    try:
        parsed = parse_period_id(reset, text)  # type: ignore[arg-type]
    except InvalidPeriodId:
        return
    assert parsed == text
    assert canonical(reset, text) == text


@settings(max_examples=200)
@given(day=st.dates(min_value=date(MIN_YEAR, 1, 1), max_value=date(MAX_YEAR, 12, 31)))
def test_every_day_week_and_month_has_a_valid_id(day: date) -> None:
    iso = day.isocalendar()
    week = f"{iso.year:04d}-W{iso.week:02d}"
    assert parse_period_id("daily", day.isoformat()) == day.isoformat()
    assert parse_period_id("monthly", day.isoformat()[:7]) == day.isoformat()[:7]
    if MIN_YEAR <= iso.year <= MAX_YEAR:
        assert parse_period_id("weekly", week) == week
    with pytest.raises(InvalidPeriodId):
        parse_period_id("daily", day.isoformat().replace("-", "/"))
    with pytest.raises(InvalidPeriodId):
        parse_period_id("weekly", f"{iso.year:04d}-W{iso.week}" if iso.week < 10 else week + "0")


@given(st.integers(1, MAX_SEASON))
def test_every_season_number_has_one_valid_id(number: int) -> None:
    assert parse_period_id("manual", str(number)) == str(number)
    with pytest.raises(InvalidPeriodId):
        parse_period_id("manual", "0" + str(number))


def test_53_week_years() -> None:
    long_years = [y for y in range(2000, 2041) if date(y, 12, 28).isocalendar().week == 53]
    assert long_years == [2004, 2009, 2015, 2020, 2026, 2032, 2037]
    for year in range(2000, 2041):
        text = f"{year}-W53"
        if year in long_years:
            assert parse_period_id("weekly", text) == text
        else:
            with pytest.raises(InvalidPeriodId):
                parse_period_id("weekly", text)


# -- manual seasons ------------------------------------------------------------------------------


def test_seasons_count_up() -> None:
    assert season_after("1") == "2"
    assert season_after("9") == "10"
    assert season_after(str(MAX_SEASON - 1)) == str(MAX_SEASON)
    with pytest.raises(ValueError, match="no season after"):
        season_after(str(MAX_SEASON))
    with pytest.raises(InvalidPeriodId):
        season_after("01")


def test_a_rollover_closes_the_season_and_opens_the_next_at_the_same_instant() -> None:
    start, at = utc(2026, 9, 1), utc(2026, 11, 30, 18, 0, 0, 250)
    closed, opened = rollover(Period("3", start, None), at)
    assert closed == Period("3", start, at)
    assert opened == Period("4", at, None)
    assert at not in closed
    assert at in opened
    assert utc(3000, 1, 1) in opened


def test_the_first_season_may_have_no_recorded_start() -> None:
    closed, opened = rollover(Period(FIRST_SEASON, None, None), utc(2026, 1, 1))
    assert closed == Period("1", None, utc(2026, 1, 1))
    assert opened.id == "2"


def test_a_rollover_is_refused_for_a_closed_season_or_a_clock_behind_its_start() -> None:
    start = utc(2026, 9, 1)
    with pytest.raises(ValueError, match="already closed"):
        rollover(Period("3", start, utc(2026, 10, 1)), utc(2026, 11, 1))
    with pytest.raises(ValueError, match="starts after"):
        rollover(Period("3", start, None), start - US)
    assert rollover(Period("3", start, None), start)[0] == Period("3", start, start)
    with pytest.raises(ValueError, match="aware"):
        rollover(Period("3", start, None), datetime(2026, 11, 1))
    with pytest.raises(InvalidPeriodId):
        rollover(Period("2026-11", start, None), utc(2026, 11, 1))


# -- the Period value ----------------------------------------------------------------------------


def test_a_period_is_an_aware_utc_interval() -> None:
    with pytest.raises(ValueError, match="aware UTC"):
        Period("1", datetime(2026, 1, 1), None)
    with pytest.raises(ValueError, match="aware UTC"):
        Period("1", None, datetime(2026, 1, 1, tzinfo=timezone(HOUR)))
    with pytest.raises(ValueError, match="ends before it starts"):
        Period("1", utc(2026, 1, 2), utc(2026, 1, 1))
    # Any zero offset is UTC; equality compares instants.
    assert Period("1", datetime(2026, 1, 1, tzinfo=timezone(timedelta(0))), None) == Period(
        "1", utc(2026, 1, 1), None
    )


def test_the_api_form_of_a_period() -> None:
    period = period_bounds("daily", "Europe/Berlin", "2026-11-30")
    assert period.as_dict() == {
        "id": "2026-11-30",
        "starts_at": "2026-11-29T23:00:00.000000Z",
        "ends_at": "2026-11-30T23:00:00.000000Z",
    }
    assert ALL_TIME.as_dict() == {"id": "all", "starts_at": None, "ends_at": None}
    season = Period("2", utc(2026, 11, 30, 18, 0, 0, 250), None)
    assert season.as_dict() == {
        "id": "2",
        "starts_at": "2026-11-30T18:00:00.000250Z",
        "ends_at": None,
    }


def test_a_period_holds_its_start_but_not_its_end() -> None:
    period = Period("2026-11-30", utc(2026, 11, 30), utc(2026, 12, 1))
    assert utc(2026, 11, 30) in period
    assert utc(2026, 12, 1) - US in period
    assert utc(2026, 12, 1) not in period
    assert utc(2026, 11, 30) - US not in period
    assert utc(1900, 1, 1) in ALL_TIME


def test_a_frozen_value() -> None:
    with pytest.raises(AttributeError):
        ALL_TIME.id = "x"  # type: ignore[misc]
    assert (
        len(
            {
                period_bounds("daily", "UTC", "2026-11-30"),
                Period("2026-11-30", utc(2026, 11, 30), utc(2026, 12, 1)),
            }
        )
        == 1
    )


# -- time zones ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "US/Eastern", "Etc/GMT-14"]
)
def test_iana_names_are_zones(name: str) -> None:
    assert name in timezones()
    assert str(zone(name)) == name


@pytest.mark.parametrize(
    "name",
    [
        "localtime",
        "Factory",
        "posixrules",
        "",
        "Europe/Nowhere",
        "europe/berlin",
        "../etc/passwd",
        "/etc/localtime",
        "UTC ",
        "right/UTC",
        "posix/UTC",
    ],
)
def test_anything_else_is_an_unknown_timezone(name: str) -> None:
    # localtime is the host's own zone: two hosts would cut different days from the same name.
    with pytest.raises(UnknownTimezone):
        zone(name)
    with pytest.raises(UnknownTimezone):
        period_at("daily", name, utc(2026, 1, 1))
    assert not isinstance(UnknownTimezone(), InvalidRequest)


def test_every_reset_checks_its_zone() -> None:
    # A never board's one period does not depend on its zone, but a bad name is still a bug.
    with pytest.raises(UnknownTimezone):
        period_at("never", "Europe/Nowhere", utc(2026, 1, 1))
    with pytest.raises(UnknownTimezone):
        next_boundary("manual", "Europe/Nowhere", utc(2026, 1, 1))
    with pytest.raises(UnknownTimezone):
        period_bounds("never", "Europe/Nowhere", "all")
