"""Board periods: which period an instant belongs to, and the strict form of period ids.

A board's ``reset`` rule and IANA ``timezone`` cut time into periods. Clock resets are pure
functions of the instant, so every process computes the same period without asking anyone:

============  ==============  ===================================================================
reset         id              period
============  ==============  ===================================================================
``never``     ``all``         all of time (``starts_at`` and ``ends_at`` are ``None``)
``daily``     ``2026-11-30``  from the first instant of that local day to that of the next
``weekly``    ``2026-W49``    ISO week (week-numbering year, Monday start), from Monday's first
                              local instant to the next Monday's
``monthly``   ``2026-11``     from the first local instant of the 1st to that of the next 1st
``manual``    ``1``, ``2``..  seasons: a new one starts when an operator rolls over; stored, not
                              computed (:func:`rollover`), so :func:`period_at` refuses them
============  ==============  ===================================================================

**The first instant of a local day.** A period starts at local midnight of its first day, read
as the first instant at which the zone's wall clock shows that day or later:

- midnight exists once: that instant;
- midnight is skipped (a clock set forward across it: America/Santiago, America/Havana and
  Asia/Beirut spring forward at 00:00): the instant of the jump, when the wall clock first shows
  that day (01:00 after a one-hour jump);
- midnight occurs twice (a clock set back across it: America/Havana falls back at 01:00 to
  00:00; America/St_Johns used to fall back at 00:01 to 23:01): the first occurrence. An instant
  whose wall clock shows the previous day again after that belongs to the new period, so periods
  stay contiguous: the period of an instant is not always its local date.

So a day lasts 23 or 25 hours (23.5 or 24.5 at Australia/Lord_Howe) across a DST change, and a
day skipped whole (Pacific/Apia, 2011-12-30) is a period of zero length: :func:`period_bounds`
answers it, but no instant belongs to it and :func:`following` and :func:`preceding` step over it.

Ids are strict: exactly the canonical text is a valid id (``2026-W05``, not ``2026-W5``, nor
`` 2026-W05``), and years run from :data:`MIN_YEAR` to :data:`MAX_YEAR`, so that every period of a
valid id has representable bounds. Manual season numbers run from 1 to :data:`MAX_SEASON`.

Every instant taken or returned is an aware ``datetime``; returned ones are in UTC. Nothing here
reads a clock: callers pass the instant. Zone rules come from ``zoneinfo``: the host's tz database
where there is one, else the ``tzdata`` package. Processes on hosts with different tz database
versions agree on every period except where a government changed its rules between the versions.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Final, Literal, get_args
from zoneinfo import ZoneInfo

from scoreboard.errors import InvalidRequest

Reset = Literal["never", "daily", "weekly", "monthly", "manual"]
RESETS: Final[tuple[Reset, ...]] = get_args(Reset)
ClockReset = Literal["daily", "weekly", "monthly"]
"""The resets whose periods follow from the clock and have bounds; ``never`` has one period."""

ALL: Final = "all"
"""The one period id of a board that never resets."""
FIRST_SEASON: Final = "1"
"""The id of a manual board's first season."""

MIN_YEAR: Final = 1900
"""Earliest year of a period id. Before it most zones ran on local mean time, and no server
clock commits an event there."""
MAX_YEAR: Final = 9998
"""Latest year of a period id: the period after the last one of 9998 still starts in a year
``datetime`` can hold."""
MAX_SEASON: Final = 2**31 - 1
"""Largest manual season number (a 32-bit column; one rollover a second would take 68 years)."""

_ZERO = timedelta(0)
_DAY_ID = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_WEEK_ID = re.compile(r"([0-9]{4})-W([0-9]{2})")
_MONTH_ID = re.compile(r"([0-9]{4})-([0-9]{2})")
_SEASON_ID = re.compile(r"[1-9][0-9]{0,9}")
_FORMS: Final[dict[str, str]] = {
    "never": "'all'",
    "daily": "YYYY-MM-DD",
    "weekly": "YYYY-Www (ISO week)",
    "monthly": "YYYY-MM",
    "manual": f"a season number from 1 to {MAX_SEASON} without leading zeros",
}


PERIOD_FORMS: Final[dict[str, str]] = {
    "never": r"^all$",
    "daily": r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$",
    "weekly": r"^[0-9]{4}-W(0[1-9]|[1-4][0-9]|5[0-3])$",
    "monthly": r"^[0-9]{4}-(0[1-9]|1[0-2])$",
    "manual": r"^[1-9][0-9]{0,9}$",
}
"""The form of a reset's period ids as a pattern the API documents (OpenAPI): an id not of its
board's form is a 400 (``invalid_period``). Within the form, an id that names no period (the
30th of February, week 53 of a year with 52, a year outside the supported range, a season past
``MAX_SEASON``) is well formed and simply does not exist: 404, as a period never started."""


def has_period_form(reset: str, text: str) -> bool:
    return re.fullmatch(PERIOD_FORMS[reset], text) is not None


class InvalidPeriodId(InvalidRequest, ValueError):
    """A period id not of the canonical form for the board's reset (400 ``invalid_period``).

    Only the form is checked: a well-formed id may still name a period the board never had,
    which only the store can tell (404 ``unknown_period``).
    """

    code = "invalid_period"


class UnknownTimezone(ValueError):
    """A name that is not an IANA time zone of :func:`timezones`."""


@dataclass(frozen=True, slots=True)
class Period:
    """One period of a board: ``[starts_at, ends_at)``, ``None`` where unbounded.

    Both bounds are aware UTC instants (any ``tzinfo`` whose offset is zero is accepted; compare
    them, do not rely on their ``tzinfo`` object). A current manual season has ``ends_at`` of
    ``None``; the ``never`` period has neither bound.
    """

    id: str
    starts_at: datetime | None
    ends_at: datetime | None

    def __post_init__(self) -> None:
        for name in ("starts_at", "ends_at"):
            moment = getattr(self, name)
            if moment is not None and moment.utcoffset() != _ZERO:
                raise ValueError(f"Period.{name} must be an aware UTC datetime, got {moment!r}")
        if (
            self.starts_at is not None
            and self.ends_at is not None
            and self.ends_at < self.starts_at
        ):
            raise ValueError(f"period {self.id!r} ends before it starts")

    def __contains__(self, instant: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= instant) and (
            self.ends_at is None or instant < self.ends_at
        )

    def as_dict(self) -> dict[str, str | None]:
        """The API's form: ``{"id", "starts_at", "ends_at"}``, RFC 3339 UTC with a ``Z`` and
        microseconds (as every time the API returns), ``None`` (JSON ``null``) where unbounded."""
        return {
            "id": self.id,
            "starts_at": _rfc3339(self.starts_at),
            "ends_at": _rfc3339(self.ends_at),
        }


ALL_TIME: Final = Period(ALL, None, None)


@functools.cache
def timezones() -> frozenset[str]:
    """The time zone names a board may name: those of the ``tzdata`` package (a dependency).

    The same set on every host, whatever its own tz database holds: ``localtime`` (the host's
    zone) and ``Factory`` (no zone at all) are not among them. Links such as ``US/Eastern`` are.
    """
    names = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()
    return frozenset(names) - {"Factory"}


def zone(name: str) -> ZoneInfo:
    """The zone of an IANA name of :func:`timezones`; :class:`UnknownTimezone` for any other."""
    if name not in timezones():
        raise UnknownTimezone(f"unknown IANA time zone {name!r}")
    return ZoneInfo(name)


def period_at(reset: Reset, timezone: str, instant: datetime) -> Period:
    """The period of a clock reset (``never``, ``daily``, ``weekly``, ``monthly``) that holds
    ``instant``: always ``starts_at <= instant < ends_at``.

    ``manual`` raises ``ValueError``: a season is whatever the store says is current. So does an
    instant whose period falls outside :data:`MIN_YEAR`-:data:`MAX_YEAR`, or a naive one.
    """
    moment = _aware(instant)
    tz = zone(timezone)
    if _clock_or_never(reset) == "never":
        return ALL_TIME
    kind = _clock(reset)
    try:
        key = _key_of(kind, moment.astimezone(tz).date())
        start, end = _day_start(tz, key), _day_start(tz, _next_key(kind, key))
        # The local date lags the period for an instant after a clock set back across midnight.
        while end <= moment:
            key, start = _next_key(kind, key), end
            end = _day_start(tz, _next_key(kind, key))
    except OverflowError:  # within a day of datetime.min or datetime.max
        raise ValueError(f"periods are defined from {MIN_YEAR} to {MAX_YEAR} only") from None
    return Period(_id_of(kind, key), start, end)


def next_boundary(reset: Reset, timezone: str, instant: datetime) -> datetime | None:
    """The first instant after ``instant`` that belongs to another period: when a timer should
    announce that a new period started. ``None`` for ``never`` and ``manual``, whose periods no
    clock ends."""
    if reset == "manual":
        _aware(instant)
        zone(timezone)
        return None
    return period_at(reset, timezone, instant).ends_at


def period_bounds(reset: Reset, timezone: str, period_id: str) -> Period:
    """The period of a clock reset named by ``period_id``, past, current or future.

    :class:`InvalidPeriodId` if the id is not of the reset's form; ``ValueError`` for ``manual``
    (seasons are stored). A period whose every instant was skipped by the zone's clock comes out
    empty (``starts_at == ends_at``).
    """
    tz = zone(timezone)
    if _clock_or_never(reset) == "never":
        parse_period_id("never", period_id)
        return ALL_TIME
    kind = _clock(reset)
    key = _key_from_id(kind, period_id)
    return Period(period_id, _day_start(tz, key), _day_start(tz, _next_key(kind, key)))


def following(reset: ClockReset, timezone: str, period_id: str) -> Period:
    """The period after ``period_id`` of a daily, weekly or monthly board: it starts where the
    given one ends, and periods no instant belongs to are stepped over.

    ``ValueError`` for ``never`` (one period) and ``manual`` (:func:`season_after`), and past
    :data:`MAX_YEAR`; :class:`InvalidPeriodId` for an id not of the reset's form.
    """
    kind = _clock(reset)
    tz = zone(timezone)
    key = _next_key(kind, _key_from_id(kind, period_id))
    start = _day_start(tz, key)
    end = _day_start(tz, _next_key(kind, key))
    while end == start:
        key = _next_key(kind, key)
        end = _day_start(tz, _next_key(kind, key))
    return Period(_id_of(kind, key), start, end)


def preceding(reset: ClockReset, timezone: str, period_id: str) -> Period:
    """The period before ``period_id`` of a daily, weekly or monthly board: it ends where the
    given one starts, and periods no instant belongs to are stepped over.

    ``ValueError`` for ``never`` and ``manual``, and before :data:`MIN_YEAR`;
    :class:`InvalidPeriodId` for an id not of the reset's form.
    """
    kind = _clock(reset)
    tz = zone(timezone)
    key = _key_from_id(kind, period_id)
    end = _day_start(tz, key)
    key = _prev_key(kind, key)
    start = _day_start(tz, key)
    while start == end:
        key = _prev_key(kind, key)
        start = _day_start(tz, key)
    return Period(_id_of(kind, key), start, end)


def parse_period_id(reset: Reset, text: str) -> str:
    """``text`` if it is exactly the canonical id of a period of ``reset``, else
    :class:`InvalidPeriodId` (whose message says the expected form).

    The form alone: the timezone does not matter, and a valid id may name a period the board
    never had. An unknown ``reset`` is a ``ValueError`` (a bug, not a bad request).
    """
    kind = _clock_or_never(reset)
    if not isinstance(text, str):
        raise InvalidPeriodId(f"a period id is a string, got {type(text).__name__}")
    if kind == "never":
        if text != ALL:
            raise _invalid(kind, text)
        return text
    if kind == "manual":
        _season_number(text)
        return text
    _key_from_id(_clock(kind), text)
    return text


def season_after(period_id: str) -> str:
    """The id of the manual season after ``period_id``: ``ValueError`` after :data:`MAX_SEASON`."""
    number = _season_number(period_id) + 1
    if number > MAX_SEASON:
        raise ValueError(f"no season after {MAX_SEASON}")
    return str(number)


def rollover(current: Period, at: datetime) -> tuple[Period, Period]:
    """An operator's rollover of a manual board at ``at``: ``(closed, opened)``, the current
    season ended at ``at`` and the next one started there, open-ended.

    ``ValueError`` if ``current`` is already closed, or if ``at`` lies before its start (a clock
    set back, or another process's clock behind): the store should refuse rather than record a
    season that ends before it starts. ``at == starts_at`` is accepted (an empty season).
    """
    moment = _aware(at)
    if current.ends_at is not None:
        raise ValueError(f"season {current.id!r} is already closed")
    if current.starts_at is not None and moment < current.starts_at:
        raise ValueError(f"season {current.id!r} starts after {moment.isoformat()}")
    return (
        Period(current.id, current.starts_at, moment),
        Period(season_after(current.id), moment, None),
    )


# -- internals ----------------------------------------------------------------------------------


def _rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _aware(instant: datetime) -> datetime:
    if instant.utcoffset() is None:
        raise ValueError(f"an instant must be an aware datetime, got {instant!r}")
    return instant.astimezone(UTC)


def _clock_or_never(reset: str) -> str:
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {', '.join(RESETS)} (got {reset!r})")
    return reset


_CLOCKS: Final[dict[str, ClockReset]] = {"daily": "daily", "weekly": "weekly", "monthly": "monthly"}


def _clock(reset: str) -> ClockReset:
    kind = _CLOCKS.get(reset)
    if kind is None:
        _clock_or_never(reset)
        raise ValueError(f"a {reset!r} board has no clock periods")
    return kind


def _invalid(kind: str, text: str) -> InvalidPeriodId:
    return InvalidPeriodId(f"{text!r} is not a {kind} period id: expected {_FORMS[kind]}")


def _season_number(text: str) -> int:
    # fullmatch on [0-9] (not \d, which takes every script's digits), then int() of ASCII only.
    if not _SEASON_ID.fullmatch(text) or int(text) > MAX_SEASON:
        raise _invalid("manual", text)
    return int(text)


def _key_from_id(kind: ClockReset, text: str) -> date:
    """The first local day of the period named ``text``, checking the strict form."""
    if not isinstance(text, str):
        raise InvalidPeriodId(f"a period id is a string, got {type(text).__name__}")
    try:
        if kind == "daily" and (match := _DAY_ID.fullmatch(text)):
            key = date(int(match[1]), int(match[2]), int(match[3]))
        elif kind == "weekly" and (match := _WEEK_ID.fullmatch(text)):
            key = date.fromisocalendar(int(match[1]), int(match[2]), 1)
        elif kind == "monthly" and (match := _MONTH_ID.fullmatch(text)):
            key = date(int(match[1]), int(match[2]), 1)
        else:
            raise _invalid(kind, text)
    except ValueError as exc:  # 2026-13, 2026-02-30, 2025-W53, 2026-W00
        if isinstance(exc, InvalidPeriodId):
            raise
        raise _invalid(kind, text) from None
    if not MIN_YEAR <= int(text[:4]) <= MAX_YEAR:
        raise InvalidPeriodId(
            f"{text!r} is not a {kind} period id: years run from {MIN_YEAR} to {MAX_YEAR}"
        )
    return key


def _key_of(kind: ClockReset, day: date) -> date:
    """The first day of the period that holds local date ``day``."""
    if kind == "daily":
        return day
    if kind == "weekly":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _next_key(kind: ClockReset, key: date) -> date:
    if kind == "daily":
        return key + timedelta(days=1)
    if kind == "weekly":
        return key + timedelta(days=7)
    return date(key.year + key.month // 12, key.month % 12 + 1, 1)


def _prev_key(kind: ClockReset, key: date) -> date:
    if kind == "daily":
        return key - timedelta(days=1)
    if kind == "weekly":
        return key - timedelta(days=7)
    return date(key.year - (key.month == 1), (key.month - 2) % 12 + 1, 1)


def _id_of(kind: ClockReset, key: date) -> str:
    year = key.isocalendar().year if kind == "weekly" else key.year
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"periods are defined from {MIN_YEAR} to {MAX_YEAR} only")
    if kind == "daily":
        return key.isoformat()
    if kind == "weekly":
        return f"{year:04d}-W{key.isocalendar().week:02d}"
    return f"{key.year:04d}-{key.month:02d}"


def _day_start(tz: ZoneInfo, day: date) -> datetime:
    """The first instant (UTC) at which the wall clock of ``tz`` shows ``day`` or later."""
    midnight = datetime(day.year, day.month, day.day)
    # PEP 495: for a repeated wall time fold=0 is the earlier instant; for a skipped one fold=0
    # reads it with the offset before the jump and fold=1 with the one after.
    first = midnight.replace(tzinfo=tz).astimezone(UTC)
    second = midnight.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first <= second:  # midnight exists once (equal) or twice (first is the first occurrence)
        return first
    # Skipped: the jump lies in (second, first]. Find it to the second (tz offsets and
    # transitions are whole seconds): the first instant whose wall clock reads midnight or later.
    low, high = int(second.timestamp()), int(first.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).replace(tzinfo=None) >= midnight:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)
