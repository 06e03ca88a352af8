"""Metrics and boards: what the service ranks, read from the operator's TOML file.

A **metric** is a stream of score events (``points`` by default) with its own delta range and
velocity limit. A **board** reads one metric and ranks users by an aggregate of their events
within a period: the ``sum``, or the single ``best`` event (highest for ``order = "desc"``,
lowest for ``"asc"``), with periods cut by ``reset`` in ``timezone`` (:mod:`scoreboard.periods`).

The file (``SCOREBOARD_BOARDS``) is checked strictly, because a board silently misread keeps
ranking the wrong thing until someone notices: unknown keys are refused, nothing is coerced
(``keep = "5"`` and ``keep = true`` are errors), and every error is one line naming the file,
the board or metric, and the problem. The value types check their own invariants, so a
configuration read back from the database (:meth:`BoardsConfig.from_json`) is held to the same
rules as the file.

The applied configuration is stored, and every process compares its own with it: equality is
by value, and :meth:`BoardsConfig.to_json` is canonical (sorted keys, no spaces, ASCII), so two
equal configurations have the same JSON text. Store it as text: a JSON column type that
reformats (PostgreSQL's ``jsonb``) would break the comparison by text.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, TypeVar, get_args

from scoreboard.model import DEFAULT_BOARD, DELTA_LIMIT, MAX_SCORE
from scoreboard.periods import RESETS, Reset, timezones

Aggregate = Literal["sum", "best"]
Order = Literal["desc", "asc"]
AGGREGATES: Final[tuple[Aggregate, ...]] = get_args(Aggregate)
ORDERS: Final[tuple[Order, ...]] = get_args(Order)

DEFAULT_METRIC: Final = "points"
NAME_PATTERN: Final = r"[a-z0-9_-]{1,64}"
"""A board id or metric name: it appears in URLs, Redis keys and log lines as it is."""
TITLE_MAX: Final = 100
"""Longest title, in characters: a heading or a tab label, not a description."""
KEEP_MAX: Final = 2**31 - 1
JSON_FORMAT: Final = 1
"""Version of :meth:`BoardsConfig.to_json`'s layout, stored with it."""

REINTERPRETING: Final = ("metric", "aggregate", "order", "reset", "timezone")
"""Board fields whose change would give the board's stored history another meaning."""
_BOARD_KEYS: Final = ("title", "metric", "aggregate", "order", "reset", "timezone", "keep")
_METRIC_KEYS: Final = ("min_delta", "max_delta", "velocity_limit")

_NAME = re.compile(NAME_PATTERN)
_T = TypeVar("_T")


class BoardsConfigError(ValueError):
    """A configuration that cannot be used; the message is one line naming the source, the
    board or metric, and the problem, fit to stop ``serve`` with."""


@dataclass(frozen=True, slots=True)
class Metric:
    """A stream of score events: each delta lies in ``[min_delta, max_delta]`` and is not 0;
    ``velocity_limit`` is the most one user may gain in any minute (``None``: no limit)."""

    name: str
    min_delta: int
    max_delta: int
    velocity_limit: int | None = None

    def __post_init__(self) -> None:
        try:
            _check_name(self.name, "name")
            for key in ("min_delta", "max_delta"):
                value = getattr(self, key)
                if type(value) is not int or not -DELTA_LIMIT <= value <= DELTA_LIMIT:
                    raise _Problem(
                        f"{key} must be an integer from {-DELTA_LIMIT} to {DELTA_LIMIT} "
                        f"(got {_show(value)})"
                    )
            if self.min_delta > self.max_delta:
                raise _Problem(
                    f"min_delta ({self.min_delta}) must not be greater than max_delta "
                    f"({self.max_delta})"
                )
            if self.min_delta == 0 == self.max_delta:
                raise _Problem("the range min_delta..max_delta must contain a value other than 0")
            _check_positive(self.velocity_limit, "velocity_limit", MAX_SCORE)
        except _Problem as problem:
            raise ValueError(f"metric {_show(self.name)}: {problem}") from None


@dataclass(frozen=True, slots=True)
class Board:
    """A ranking of one metric's events: per period, each user's ``sum`` or ``best`` event,
    ``desc`` (highest first) or ``asc``.

    ``keep``: how many closed periods (archives) to keep; ``None`` keeps them all. Only a board
    that resets has archives, so ``keep`` with ``reset = "never"`` is refused rather than
    ignored. ``title``: 1-100 characters, all printable (``str.isprintable``: no control, format
    or separator characters but the plain space), none of them a space at either end.
    """

    id: str
    title: str
    metric: str = DEFAULT_METRIC
    aggregate: Aggregate = "sum"
    order: Order = "desc"
    reset: Reset = "never"
    timezone: str = "UTC"
    keep: int | None = None

    def __post_init__(self) -> None:
        try:
            _check_name(self.id, "id")
            _check_title(self.title)
            _check_name(self.metric, "metric")
            _check_choice(self.aggregate, "aggregate", AGGREGATES)
            _check_choice(self.order, "order", ORDERS)
            _check_choice(self.reset, "reset", RESETS)
            if type(self.timezone) is not str or self.timezone not in timezones():
                raise _Problem(f"timezone must be an IANA time zone (got {_show(self.timezone)})")
            _check_positive(self.keep, "keep", KEEP_MAX)
            if self.keep is not None and self.reset == "never":
                raise _Problem('keep needs a board that resets (reset = "never" has no archives)')
        except _Problem as problem:
            raise ValueError(f"board {_show(self.id)}: {problem}") from None


@dataclass(frozen=True, slots=True)
class BoardsConfig:
    """Every metric by name and every board by id, each mapping sorted by key.

    Invariants: at least one board; every board's metric is among the metrics; the metric
    ``points`` always exists (the seed's update endpoint records it); each key is its value's
    name or id. The mappings are read-only.
    """

    metrics: Mapping[str, Metric]
    boards: Mapping[str, Board]

    def __post_init__(self) -> None:
        metrics = MappingProxyType(dict(sorted(self.metrics.items())))
        boards = MappingProxyType(dict(sorted(self.boards.items())))
        object.__setattr__(self, "metrics", metrics)
        object.__setattr__(self, "boards", boards)
        for name, metric in metrics.items():
            if not isinstance(metric, Metric) or metric.name != name:
                raise ValueError(f"metric {_show(name)}: keyed under another name")
        for board_id, board in boards.items():
            if not isinstance(board, Board) or board.id != board_id:
                raise ValueError(f"board {_show(board_id)}: keyed under another id")
            if board.metric not in metrics:
                raise ValueError(
                    f"board {_show(board_id)}: unknown metric {_show(board.metric)} "
                    f"(metrics: {', '.join(metrics)})"
                )
        if not boards:
            raise ValueError("no boards: declare at least one [boards.ID] table")
        if DEFAULT_METRIC not in metrics:
            raise ValueError(f"the metric {DEFAULT_METRIC!r} is missing")

    @classmethod
    def default(cls, min_delta: int, max_delta: int, velocity_limit: int | None) -> BoardsConfig:
        """Without a boards file: ``points`` with the settings' range and limit, and one board
        ``main``, the all-time sum of points."""
        points = Metric(DEFAULT_METRIC, min_delta, max_delta, velocity_limit)
        main = Board(DEFAULT_BOARD, "All time")
        return cls({points.name: points}, {main.id: main})

    def to_json(self) -> str:
        """Canonical JSON: equal configurations give the same text, and :meth:`from_json`
        gives back an equal configuration."""
        document = {
            "format": JSON_FORMAT,
            "metrics": {
                m.name: {key: getattr(m, key) for key in _METRIC_KEYS}
                for m in self.metrics.values()
            },
            "boards": {
                b.id: {key: getattr(b, key) for key in _BOARD_KEYS} for b in self.boards.values()
            },
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def from_json(cls, text: str, *, source: str = "stored boards configuration") -> BoardsConfig:
        """The configuration of :meth:`to_json`, held to the same rules as a file: every key
        present, none unknown, no coercion. :class:`BoardsConfigError` otherwise."""
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise BoardsConfigError(f"{_source(source)}: not JSON ({exc})") from None
        try:
            if not isinstance(document, dict):
                raise ValueError("not a JSON object")
            _exact_keys(document, ("boards", "format", "metrics"), "")
            if type(document["format"]) is not int or document["format"] != JSON_FORMAT:
                raise ValueError(f"format {_show(document['format'])} is not {JSON_FORMAT}")
            metrics = {
                name: Metric(name, **_exact_keys(fields, _METRIC_KEYS, f"metric {_show(name)}"))
                for name, fields in _table(document["metrics"], "metrics").items()
            }
            boards = {
                board_id: Board(
                    board_id, **_exact_keys(fields, _BOARD_KEYS, f"board {_show(board_id)}")
                )
                for board_id, fields in _table(document["boards"], "boards").items()
            }
            return cls(metrics, boards)
        except ValueError as exc:
            raise BoardsConfigError(f"{_source(source)}: {exc}") from None


def load_config(path: str | os.PathLike[str], *, points_defaults: Metric) -> BoardsConfig:
    """:func:`parse_config` of the file at ``path``, named in errors as ``path`` was given."""
    source = os.fspath(path)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise BoardsConfigError(f"{_source(source)}: cannot read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BoardsConfigError(
            f"{_source(source)}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8"
        ) from None
    return parse_config(text, source=source, points_defaults=points_defaults)


def parse_config(text: str, *, source: str, points_defaults: Metric) -> BoardsConfig:
    """The configuration a TOML text declares; :class:`BoardsConfigError` for the first problem.

    Board keys other than ``title`` take the defaults of :class:`Board`. The metric ``points``
    exists whether or not the file declares it: each of its keys the file leaves out is taken
    from ``points_defaults`` (the settings' ``SCOREBOARD_MIN_DELTA``, ``MAX_DELTA`` and
    ``VELOCITY_LIMIT``). Any other metric must state ``min_delta`` and ``max_delta``; without
    ``velocity_limit`` it has none.
    """
    if points_defaults.name != DEFAULT_METRIC:
        raise ValueError(f"points_defaults must be the metric {DEFAULT_METRIC!r}")
    where = _source(source)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BoardsConfigError(f"{where}: {_one_line(str(exc))}") from None
    try:
        _known_keys(document, ("metrics", "boards"), "")
        metrics = {DEFAULT_METRIC: points_defaults}
        for name, fields in _table(document.get("metrics", {}), "metrics").items():
            metrics[name] = _metric(name, fields, points_defaults)
        boards: dict[str, Board] = {}
        for board_id, fields in _table(document.get("boards", {}), "boards").items():
            boards[board_id] = _board(board_id, fields)
            metric = boards[board_id].metric
            if metric not in metrics:
                raise ValueError(
                    f"board {_show(board_id)}: unknown metric {_show(metric)} (declare it as "
                    f"[metrics.{metric}]; declared: {', '.join(sorted(metrics))})"
                )
        return BoardsConfig(metrics, boards)
    except ValueError as exc:
        raise BoardsConfigError(f"{where}: {exc}") from None


class Difference(NamedTuple):
    """One field that differs between two configurations, for a board or metric in both."""

    subject: Literal["board", "metric"]
    name: str
    field: str
    old: object
    new: object

    @property
    def reinterprets(self) -> bool:
        """Whether the change would give the board's stored history another meaning: refuse it
        for a board that has data (a new board id is the way)."""
        return self.subject == "board" and self.field in REINTERPRETING

    def describe(self) -> str:
        """One line for the log, or the refusal of a reinterpreting change."""
        line = f"{self.subject} {_show(self.name)}: {self.field} changed from {_show(self.old)} "
        line += f"to {_show(self.new)}"
        if self.reinterprets:
            line += (
                ", which would reinterpret the board's history; "
                "leave it as it was and declare a board with a new id instead"
            )
        return line


def differences(stored: BoardsConfig, new: BoardsConfig) -> list[Difference]:
    """What changed for the boards and metrics in both configurations, by board id or metric
    name then field. Boards and metrics added or removed are not listed: compare the keys.

    A metric's range or velocity limit may change (it applies to new events only), as may a
    board's ``title`` or ``keep`` (a smaller ``keep`` deletes archives at the next rollover).
    """
    found: list[Difference] = []
    for name in sorted(stored.metrics.keys() & new.metrics.keys()):
        found += _differing("metric", name, stored.metrics[name], new.metrics[name], _METRIC_KEYS)
    for board_id in sorted(stored.boards.keys() & new.boards.keys()):
        found += _differing(
            "board", board_id, stored.boards[board_id], new.boards[board_id], _BOARD_KEYS
        )
    return found


def reinterpretations(stored: BoardsConfig, new: BoardsConfig) -> list[tuple[str, str]]:
    """``(board id, field)`` for each of ``metric``, ``aggregate``, ``order``, ``reset`` and
    ``timezone`` that changed on a board present in both: the caller refuses to start if such
    a board has data."""
    return [(d.name, d.field) for d in differences(stored, new) if d.reinterprets]


# -- internals ----------------------------------------------------------------------------------


class _Problem(ValueError):
    """A field's problem, before the board or metric it belongs to is named."""


def _metric(name: str, fields: object, points_defaults: Metric) -> Metric:
    what = f"metric {_show(name)}"
    _named(name, "name", what)
    table = _known_keys(fields, _METRIC_KEYS, what)
    if name == DEFAULT_METRIC:
        merged = {key: getattr(points_defaults, key) for key in _METRIC_KEYS} | table
        return Metric(name, **merged)
    for key in ("min_delta", "max_delta"):
        if key not in table:
            raise ValueError(f"{what}: {key} is required")
    return Metric(name, **table)


def _board(board_id: str, fields: object) -> Board:
    what = f"board {_show(board_id)}"
    _named(board_id, "id", what)
    table = _known_keys(fields, _BOARD_KEYS, what)
    if "title" not in table:
        raise ValueError(f"{what}: title is required")
    return Board(board_id, **table)


def _named(name: str, key: str, what: str) -> None:
    # The name first: a table under a bad name is reported as that, whatever it holds.
    try:
        _check_name(name, key)
    except _Problem as problem:
        raise ValueError(f"{what}: {problem}") from None


def _differing(
    subject: Literal["board", "metric"], name: str, old: object, new: object, keys: tuple[str, ...]
) -> list[Difference]:
    return [
        Difference(subject, name, key, getattr(old, key), getattr(new, key))
        for key in keys
        if getattr(old, key) != getattr(new, key)
    ]


def _table(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a table (got {_show(value)})")
    return value


def _known_keys(value: object, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    prefix = f"{what}: " if what else ""
    if not isinstance(value, dict):
        raise ValueError(f"{prefix}must be a table (got {_show(value)})")
    for key in value:
        if key not in keys:
            raise ValueError(f"{prefix}unknown key {_show(key)} (known: {', '.join(keys)})")
    return value


def _exact_keys(value: object, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    table = _known_keys(value, keys, what)
    for key in keys:
        if key not in table:
            raise ValueError(f"{what + ': ' if what else ''}{key} is missing")
    return table


def _check_name(value: object, key: str) -> None:
    if type(value) is not str or not _NAME.fullmatch(value):
        raise _Problem(f"{key} must be 1-64 characters of a-z, 0-9, _ and - (got {_show(value)})")


def _check_title(value: object) -> None:
    # str.isprintable follows the Unicode version of the running Python: a newer one accepts more.
    if (
        type(value) is not str
        or not 1 <= len(value) <= TITLE_MAX
        or not value.isprintable()
        or value != value.strip()
    ):
        raise _Problem(
            f"title must be 1-{TITLE_MAX} printable characters without spaces at either end "
            f"(got {_show(value)})"
        )


def _check_choice(value: object, key: str, options: tuple[_T, ...]) -> None:
    if type(value) is not str or value not in options:
        raise _Problem(f"{key} must be one of {', '.join(map(str, options))} (got {_show(value)})")


def _check_positive(value: object, key: str, maximum: int) -> None:
    if value is not None and (type(value) is not int or not 1 <= value <= maximum):
        raise _Problem(f"{key} must be a positive integer (got {_show(value)})")


def _show(value: object) -> str:
    """A value as the operator wrote it, in one line of bounded length."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = repr(value) if len(value) <= 60 else repr(value[:60]) + "..."
    elif isinstance(value, int) and value.bit_length() > 128:
        text = "a very large integer"
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, datetime | date | time):
        text = f"the date/time {value.isoformat()}"
    elif isinstance(value, list):
        text = "an array"
    elif isinstance(value, dict):
        text = "a table"
    elif value is None:
        text = "nothing"
    else:
        text = type(value).__name__
    return text


def _source(source: str) -> str:
    return source if source.isprintable() else repr(source)


def _one_line(text: str) -> str:
    return " ".join(text.split())
