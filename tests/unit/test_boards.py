"""The boards file: what it declares, every way it can be wrong, and its stored JSON form."""

from __future__ import annotations

import re
from pathlib import Path
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoreboard.boards import (
    AGGREGATES,
    ORDERS,
    Board,
    BoardsConfig,
    BoardsConfigError,
    Difference,
    Metric,
    differences,
    load_config,
    parse_config,
    reinterpretations,
)
from scoreboard.periods import RESETS

POINTS = Metric("points", 1, 1000, 10_000)
"""What the settings say by default: SCOREBOARD_MIN_DELTA, MAX_DELTA, VELOCITY_LIMIT."""

EXAMPLE = """
[metrics.points]
min_delta = 1
max_delta = 1000

[metrics.lap_ms]
min_delta = 1
max_delta = 3600000

[boards.main]
title = "All time"
metric = "points"          # default "points"
aggregate = "sum"          # "sum" | "best"; default "sum"
order = "desc"             # "desc" | "asc"; default "desc"
reset = "never"            # default "never"
timezone = "UTC"           # default "UTC"

[boards.weekly]
title = "This week"
reset = "weekly"
timezone = "Europe/Berlin"
keep = 52

[boards.fastest-lap]
title = "Fastest lap today"
metric = "lap_ms"
aggregate = "best"
order = "asc"
reset = "daily"
"""


def parse(text: str, points: Metric = POINTS) -> BoardsConfig:
    return parse_config(text, source="boards.toml", points_defaults=points)


def error(text: str) -> str:
    with pytest.raises(BoardsConfigError) as caught:
        parse(text)
    message = str(caught.value)
    assert "\n" not in message
    assert "\r" not in message
    return message


# -- what a file declares ------------------------------------------------------------------------


def test_the_example_file() -> None:
    config = parse(EXAMPLE)
    assert config == BoardsConfig(
        metrics={
            # Declared in the file with its range and no velocity_limit: the settings' limit
            # stays, key by key (see test_points_keys_left_out_come_from_the_settings).
            "points": Metric("points", 1, 1000, 10_000),
            "lap_ms": Metric("lap_ms", 1, 3_600_000, None),
        },
        boards={
            "main": Board("main", "All time", "points", "sum", "desc", "never", "UTC", None),
            "weekly": Board(
                "weekly", "This week", "points", "sum", "desc", "weekly", "Europe/Berlin", 52
            ),
            "fastest-lap": Board(
                "fastest-lap", "Fastest lap today", "lap_ms", "best", "asc", "daily", "UTC", None
            ),
        },
    )
    assert list(config.boards) == ["fastest-lap", "main", "weekly"]
    assert list(config.metrics) == ["lap_ms", "points"]


def test_board_defaults() -> None:
    config = parse('[boards.season]\ntitle = "Season"\n')
    assert config.boards["season"] == Board(
        id="season",
        title="Season",
        metric="points",
        aggregate="sum",
        order="desc",
        reset="never",
        timezone="UTC",
        keep=None,
    )


def test_points_exists_with_the_settings_values_when_the_file_leaves_it_out() -> None:
    settings_points = Metric("points", -5, 50, None)
    config = parse('[boards.main]\ntitle = "All time"\n', settings_points)
    assert dict(config.metrics) == {"points": settings_points}


def test_points_declared_in_the_file_wins() -> None:
    config = parse(
        "[metrics.points]\nmin_delta = -10\nmax_delta = 10\nvelocity_limit = 99\n"
        '[boards.main]\ntitle = "All time"\n'
    )
    assert config.metrics["points"] == Metric("points", -10, 10, 99)


def test_points_keys_left_out_come_from_the_settings() -> None:
    config = parse('[metrics.points]\nmax_delta = 50\n[boards.main]\ntitle = "All time"\n')
    assert config.metrics["points"] == Metric("points", 1, 50, 10_000)
    config = parse('[metrics.points]\n[boards.main]\ntitle = "All time"\n')
    assert config.metrics["points"] == POINTS


def test_another_metric_has_no_velocity_limit_unless_it_sets_one() -> None:
    config = parse(
        "[metrics.laps]\nmin_delta = 1\nmax_delta = 3\n"
        "[metrics.coins]\nmin_delta = -100\nmax_delta = 100\nvelocity_limit = 500\n"
        '[boards.main]\ntitle = "Laps"\nmetric = "laps"\n'
    )
    assert config.metrics["laps"] == Metric("laps", 1, 3, None)
    assert config.metrics["coins"] == Metric("coins", -100, 100, 500)


def test_the_default_configuration() -> None:
    config = BoardsConfig.default(1, 1000, 10_000)
    assert dict(config.metrics) == {"points": POINTS}
    assert dict(config.boards) == {
        "main": Board("main", "All time", "points", "sum", "desc", "never", "UTC", None)
    }
    assert config == parse('[boards.main]\ntitle = "All time"\n')
    assert BoardsConfig.default(-3, 7, None).metrics["points"] == Metric("points", -3, 7, None)


@pytest.mark.parametrize(
    "line",
    [
        'title = "A"',
        'title = "x"',
        'title = "Tabelle der Woche \u2013 Ü"',
        'title = "🏁 Fastest lap"',
        'title = "a b"',
        f'title = "{"x" * 100}"',
    ],
)
def test_titles(line: str) -> None:
    parse(f"[boards.main]\n{line}\n")


@pytest.mark.parametrize(
    "board_id", ["a", "main", "fastest-lap", "lap_ms", "0", "-", "_", "2026", "x" * 64]
)
def test_ids(board_id: str) -> None:
    config = parse(f'[boards."{board_id}"]\ntitle = "T"\n')
    assert list(config.boards) == [board_id]


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("aggregate", AGGREGATES)
@pytest.mark.parametrize("order", ORDERS)
def test_every_aggregate_order_and_reset(reset: str, aggregate: str, order: str) -> None:
    keep = "" if reset == "never" else "keep = 3\n"
    config = parse(
        f'[boards.b]\ntitle = "T"\naggregate = "{aggregate}"\norder = "{order}"\n'
        f'reset = "{reset}"\ntimezone = "Australia/Lord_Howe"\n{keep}'
    )
    board = config.boards["b"]
    assert (board.aggregate, board.order, board.reset) == (aggregate, order, reset)
    assert board.keep == (None if reset == "never" else 3)


def test_the_range_bounds_are_those_of_a_32_bit_column() -> None:
    config = parse(
        "[metrics.wide]\nmin_delta = -2147483647\nmax_delta = 2147483647\n"
        '[boards.main]\ntitle = "T"\nmetric = "wide"\n'
    )
    assert config.metrics["wide"] == Metric("wide", -(2**31 - 1), 2**31 - 1)


# -- every way it can be wrong -------------------------------------------------------------------

BAD_FILES = [
    # shape
    ("boards = 3", "boards.toml: boards must be a table (got 3)"),
    ("boards = []", "boards.toml: boards must be a table (got an array)"),
    ("metrics = 1", "boards.toml: metrics must be a table (got 1)"),
    (
        '[board.main]\ntitle = "T"',
        "boards.toml: unknown key 'board' (known: metrics, boards)",
    ),
    ("[boards]\nmain = 5", "boards.toml: board 'main': must be a table (got 5)"),
    ('[boards]\nmain = "All time"', "boards.toml: board 'main': must be a table (got 'All time')"),
    ("[metrics]\npoints = 1\n", "boards.toml: metric 'points': must be a table (got 1)"),
    ("", "boards.toml: no boards: declare at least one [boards.ID] table"),
    ("[boards]", "boards.toml: no boards: declare at least one [boards.ID] table"),
    (
        "[metrics.points]\nmax_delta = 5",
        "boards.toml: no boards: declare at least one [boards.ID] table",
    ),
    # unknown keys
    (
        '[boards.main]\ntitle = "T"\ncolour = "red"',
        "boards.toml: board 'main': unknown key 'colour' "
        "(known: title, metric, aggregate, order, reset, timezone, keep)",
    ),
    (
        '[boards.main]\ntitle = "T"\nTitle = "T"',
        "boards.toml: board 'main': unknown key 'Title' "
        "(known: title, metric, aggregate, order, reset, timezone, keep)",
    ),
    (
        "[metrics.laps]\nmin_delta = 1\nmax_delta = 2\nmax = 3",
        "boards.toml: metric 'laps': unknown key 'max' "
        "(known: min_delta, max_delta, velocity_limit)",
    ),
    # ids and names
    (
        '[boards.Main]\ntitle = "T"',
        "boards.toml: board 'Main': id must be 1-64 characters of a-z, 0-9, _ and - (got 'Main')",
    ),
    (
        '[boards."a b"]\ntitle = "T"',
        "boards.toml: board 'a b': id must be 1-64 characters of a-z, 0-9, _ and - (got 'a b')",
    ),
    (
        '[boards.""]\ntitle = "T"',
        "boards.toml: board '': id must be 1-64 characters of a-z, 0-9, _ and - (got '')",
    ),
    (
        '[boards."a.b"]\ntitle = "T"',
        "boards.toml: board 'a.b': id must be 1-64 characters of a-z, 0-9, _ and - (got 'a.b')",
    ),
    (
        '[boards."\\u00fc"]\ntitle = "T"',
        "boards.toml: board 'ü': id must be 1-64 characters of a-z, 0-9, _ and - (got 'ü')",
    ),
    (
        '[boards."a\\nb"]\ntitle = "T"',
        "boards.toml: board 'a\\nb': id must be 1-64 characters of a-z, 0-9, _ and - (got 'a\\nb')",
    ),
    (
        f'[boards.{"x" * 65}]\ntitle = "T"',
        f"boards.toml: board '{'x' * 60}'...: id must be 1-64 characters of a-z, 0-9, _ and - "
        f"(got '{'x' * 60}'...)",
    ),
    (
        '[boards.Main]\ncolour = "red"',  # the name is reported before what the table holds
        "boards.toml: board 'Main': id must be 1-64 characters of a-z, 0-9, _ and - (got 'Main')",
    ),
    (
        "[metrics.Laps]\nmin_delta = 1\nmax_delta = 2\n[boards.main]\ntitle = 'T'",
        "boards.toml: metric 'Laps': name must be 1-64 characters of a-z, 0-9, _ and - "
        "(got 'Laps')",
    ),
    (
        '[boards.main]\ntitle = "T"\nmetric = "laps"',
        "boards.toml: board 'main': unknown metric 'laps' "
        "(declare it as [metrics.laps]; declared: points)",
    ),
    (
        '[boards.main]\ntitle = "T"\nmetric = "Points"',
        "boards.toml: board 'main': metric must be 1-64 characters of a-z, 0-9, _ and - "
        "(got 'Points')",
    ),
    (
        '[boards.main]\ntitle = "T"\nmetric = 1',
        "boards.toml: board 'main': metric must be 1-64 characters of a-z, 0-9, _ and - (got 1)",
    ),
    # title
    ("[boards.main]\nreset = 'daily'", "boards.toml: board 'main': title is required"),
    *[
        (
            f"[boards.main]\ntitle = {value}",
            "boards.toml: board 'main': title must be 1-100 printable characters without "
            f"spaces at either end (got {shown})",
        )
        for value, shown in [
            ('""', "''"),
            ('" "', "' '"),
            ('" x"', "' x'"),
            ('"x "', "'x '"),
            ('"a\\nb"', "'a\\nb'"),
            ('"a\\tb"', "'a\\tb'"),
            ('"a\\u00a0b"', "'a\\xa0b'"),  # no-break space: not printable for Python
            ('"a\\u200bb"', "'a\\u200bb'"),  # zero-width space
            ('"\\u202egnp.exe"', "'\\u202egnp.exe'"),  # right-to-left override
            (f'"{"x" * 101}"', f"'{'x' * 60}'..."),
            ("5", "5"),
            ("true", "true"),
            ('["T"]', "an array"),
        ]
    ],
    # choices
    (
        '[boards.weekly]\ntitle = "T"\nreset = "hourly"',
        "boards.toml: board 'weekly': reset must be one of never, daily, weekly, monthly, manual "
        "(got 'hourly')",
    ),
    (
        '[boards.weekly]\ntitle = "T"\nreset = "Weekly"',
        "boards.toml: board 'weekly': reset must be one of never, daily, weekly, monthly, manual "
        "(got 'Weekly')",
    ),
    (
        '[boards.main]\ntitle = "T"\nreset = false',
        "boards.toml: board 'main': reset must be one of never, daily, weekly, monthly, manual "
        "(got false)",
    ),
    (
        '[boards.main]\ntitle = "T"\naggregate = "avg"',
        "boards.toml: board 'main': aggregate must be one of sum, best (got 'avg')",
    ),
    (
        '[boards.main]\ntitle = "T"\naggregate = "SUM"',
        "boards.toml: board 'main': aggregate must be one of sum, best (got 'SUM')",
    ),
    (
        '[boards.main]\ntitle = "T"\norder = "up"',
        "boards.toml: board 'main': order must be one of desc, asc (got 'up')",
    ),
    (
        '[boards.main]\ntitle = "T"\norder = ["desc"]',
        "boards.toml: board 'main': order must be one of desc, asc (got an array)",
    ),
    # time zones
    *[
        (
            f'[boards.main]\ntitle = "T"\ntimezone = {value}',
            f"boards.toml: board 'main': timezone must be an IANA time zone (got {shown})",
        )
        for value, shown in [
            ('"Mars/Olympus"', "'Mars/Olympus'"),
            ('"europe/berlin"', "'europe/berlin'"),
            ('"utc"', "'utc'"),
            ('"localtime"', "'localtime'"),  # the host's zone: hosts would disagree
            ('"Factory"', "'Factory'"),
            ('"../../etc/passwd"', "'../../etc/passwd'"),
            ('"+01:00"', "'+01:00'"),
            ('""', "''"),
            ("1", "1"),
        ]
    ],
    # keep
    *[
        (
            f'[boards.main]\ntitle = "T"\nreset = "daily"\nkeep = {value}',
            f"boards.toml: board 'main': keep must be a positive integer (got {shown})",
        )
        for value, shown in [
            ('"5"', "'5'"),
            ("true", "true"),
            ("5.0", "5.0"),
            ("0", "0"),
            ("-1", "-1"),
            ("2147483648", "2147483648"),
            ("2026-01-01", "the date/time 2026-01-01"),
            ("{}", "a table"),
        ]
    ],
    (
        '[boards.main]\ntitle = "T"\nkeep = 5',
        "boards.toml: board 'main': keep needs a board that resets "
        '(reset = "never" has no archives)',
    ),
    # metric ranges and limits
    (
        "[metrics.laps]\nmax_delta = 5",
        "boards.toml: metric 'laps': min_delta is required",
    ),
    (
        "[metrics.laps]\nmin_delta = 5",
        "boards.toml: metric 'laps': max_delta is required",
    ),
    (
        "[metrics.laps]\nmin_delta = 10\nmax_delta = 5",
        "boards.toml: metric 'laps': min_delta (10) must not be greater than max_delta (5)",
    ),
    (
        "[metrics.points]\nmin_delta = 2000",  # against the settings' max_delta of 1000
        "boards.toml: metric 'points': min_delta (2000) must not be greater than max_delta (1000)",
    ),
    (
        "[metrics.laps]\nmin_delta = 0\nmax_delta = 0",
        "boards.toml: metric 'laps': the range min_delta..max_delta must contain a value other "
        "than 0",
    ),
    *[
        (
            f"[metrics.laps]\nmin_delta = {low}\nmax_delta = {high}",
            f"boards.toml: metric 'laps': {key} must be an integer from -2147483647 to "
            f"2147483647 (got {shown})",
        )
        for low, high, key, shown in [
            ("-2147483648", "1", "min_delta", "-2147483648"),
            ("1", "2147483648", "max_delta", "2147483648"),
            ("1.5", "2", "min_delta", "1.5"),
            ('"1"', "2", "min_delta", "'1'"),
            ("1", "true", "max_delta", "true"),
            ("1", "inf", "max_delta", "inf"),
        ]
    ],
    *[
        (
            f"[metrics.laps]\nmin_delta = 1\nmax_delta = 2\nvelocity_limit = {value}",
            f"boards.toml: metric 'laps': velocity_limit must be a positive integer (got {shown})",
        )
        for value, shown in [("0", "0"), ("-5", "-5"), ("true", "true"), ('"10"', "'10'")]
    ],
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_every_error_is_one_line_naming_the_file_the_board_or_metric_and_the_problem(
    text: str, message: str
) -> None:
    assert error(text) == message


def test_a_toml_syntax_error_is_one_line_with_its_line_number() -> None:
    message = error('[boards.main]\ntitle = "T"\nreset = daily\n')
    assert re.fullmatch(r"boards\.toml: .+ \(at line 3, column \d+\)", message)
    message = error('[boards.main]\ntitle = "T"\n[boards.main]\ntitle = "U"\n')
    assert re.fullmatch(r"boards\.toml: .+ \(at line 3, column \d+\)", message)


def test_the_first_problem_in_the_file_is_reported() -> None:
    text = '[boards.b]\ntitle = "T"\nreset = "x"\n[boards.a]\ntitle = "T"\norder = "x"\n'
    assert error(text).startswith("boards.toml: board 'b': reset")


def test_a_source_name_that_is_not_printable_is_quoted() -> None:
    with pytest.raises(BoardsConfigError) as caught:
        parse_config("", source="boards\n.toml", points_defaults=POINTS)
    assert str(caught.value).startswith("'boards\\n.toml': no boards")


def test_the_points_defaults_must_be_points() -> None:
    with pytest.raises(ValueError, match="points_defaults"):
        parse_config(EXAMPLE, source="b.toml", points_defaults=Metric("laps", 1, 2))


def test_load_config_names_the_file_as_given(tmp_path: Path) -> None:
    path = tmp_path / "boards.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    assert load_config(path, points_defaults=POINTS) == parse(EXAMPLE)
    path.write_text('[boards.main]\ntitle = "T"\nreset = "hourly"\n', encoding="utf-8")
    with pytest.raises(BoardsConfigError, match=rf"^{re.escape(str(path))}: board 'main': reset"):
        load_config(str(path), points_defaults=POINTS)


def test_load_config_of_a_missing_or_binary_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(BoardsConfigError) as caught:
        load_config(missing, points_defaults=POINTS)
    assert str(caught.value) == f"{missing}: cannot read (No such file or directory)"
    binary = tmp_path / "latin1.toml"
    binary.write_bytes('[boards.main]\ntitle = "Zürich"\n'.encode("latin-1"))
    with pytest.raises(BoardsConfigError) as caught:
        load_config(binary, points_defaults=POINTS)
    assert str(caught.value) == f"{binary}: not UTF-8 text (byte 24); TOML files are UTF-8"


# -- the value types keep their invariants outside the file too ----------------------------------


def test_values_refuse_what_the_file_would() -> None:
    with pytest.raises(ValueError, match="board 'main': keep must be a positive integer"):
        Board("main", "T", reset="daily", keep=0)
    with pytest.raises(ValueError, match="board 'main': timezone"):
        Board("main", "T", timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="metric 'x': min_delta"):
        Metric("x", True, 5)  # a bool is an int to the type checker, not to the metric
    with pytest.raises(ValueError, match="board 'main': unknown metric 'laps'"):
        BoardsConfig({"points": POINTS}, {"main": Board("main", "T", metric="laps")})
    with pytest.raises(ValueError, match="no boards"):
        BoardsConfig({"points": POINTS}, {})
    laps = Metric("laps", 1, 2)
    with pytest.raises(ValueError, match="'points' is missing"):
        BoardsConfig({"laps": laps}, {"main": Board("main", "T", metric="laps")})
    with pytest.raises(ValueError, match="board 'other': keyed under another id"):
        BoardsConfig({"points": POINTS}, {"other": Board("main", "T")})


def test_a_configuration_is_read_only() -> None:
    config = BoardsConfig.default(1, 1000, None)
    with pytest.raises(TypeError):
        config.boards["x"] = Board("x", "X")  # type: ignore[index]
    with pytest.raises(AttributeError):
        config.boards = {}  # type: ignore[misc]
    # The mappings are copies: changing what was passed in changes nothing.
    boards = {"main": Board("main", "T")}
    config = BoardsConfig({"points": POINTS}, boards)
    boards["other"] = Board("other", "O")
    assert list(config.boards) == ["main"]


# -- the stored JSON form ------------------------------------------------------------------------

names = st.from_regex(r"[a-z0-9_-]{1,64}", fullmatch=True)
titles = st.text(
    st.characters(codec="utf-8", categories=["L", "N", "P", "S"]), min_size=1, max_size=100
)
deltas = st.integers(-(2**31 - 1), 2**31 - 1)


@st.composite
def metrics(draw: st.DrawFn, name: str) -> Metric:
    low, high = sorted((draw(deltas), draw(deltas)))
    if low == high == 0:
        high = 1
    limit = draw(st.none() | st.integers(1, 2**53 - 1))
    return Metric(name, low, high, limit)


@st.composite
def configs(draw: st.DrawFn) -> BoardsConfig:
    metric_names = ["points", *draw(st.lists(names, max_size=3, unique=True))]
    metric_map = {name: draw(metrics(name)) for name in metric_names}
    boards = {}
    for board_id in draw(st.lists(names, min_size=1, max_size=4, unique=True)):
        reset = draw(st.sampled_from(RESETS))
        boards[board_id] = Board(
            board_id,
            draw(titles),
            draw(st.sampled_from(sorted(metric_map))),
            draw(st.sampled_from(AGGREGATES)),
            draw(st.sampled_from(ORDERS)),
            reset,
            draw(st.sampled_from(["UTC", "Europe/Berlin", "America/Santiago", "Asia/Kolkata"])),
            None if reset == "never" else draw(st.none() | st.integers(1, 2**31 - 1)),
        )
    return BoardsConfig(metric_map, boards)


def test_the_example_as_json() -> None:
    assert parse(EXAMPLE).to_json() == (
        '{"boards":{'
        '"fastest-lap":{"aggregate":"best","keep":null,"metric":"lap_ms","order":"asc",'
        '"reset":"daily","timezone":"UTC","title":"Fastest lap today"},'
        '"main":{"aggregate":"sum","keep":null,"metric":"points","order":"desc",'
        '"reset":"never","timezone":"UTC","title":"All time"},'
        '"weekly":{"aggregate":"sum","keep":52,"metric":"points","order":"desc",'
        '"reset":"weekly","timezone":"Europe/Berlin","title":"This week"}},'
        '"format":1,'
        '"metrics":{"lap_ms":{"max_delta":3600000,"min_delta":1,"velocity_limit":null},'
        '"points":{"max_delta":1000,"min_delta":1,"velocity_limit":10000}}}'
    )


@settings(max_examples=150)
@given(configs())
def test_json_round_trip(config: BoardsConfig) -> None:
    text = config.to_json()
    assert text.isascii()
    back = BoardsConfig.from_json(text)
    assert back == config
    assert back.to_json() == text


@settings(max_examples=100)
@given(configs(), st.randoms(use_true_random=False))
def test_equal_configurations_have_the_same_json_whatever_the_order(
    config: BoardsConfig, random: Random
) -> None:
    metrics = list(config.metrics.items())
    boards = list(config.boards.items())
    random.shuffle(metrics)
    random.shuffle(boards)
    shuffled = BoardsConfig(dict(metrics), dict(boards))
    assert shuffled == config
    assert shuffled.to_json() == config.to_json()


def test_the_file_order_does_not_matter() -> None:
    reordered = EXAMPLE.split("[boards.main]")
    text = (
        reordered[0].replace("[metrics.points]\nmin_delta = 1\nmax_delta = 1000\n\n", "")
        + "[metrics.points]\nmax_delta = 1000\nmin_delta = 1\n[boards.main]"
        + reordered[1]
    )
    assert parse(text) == parse(EXAMPLE)
    assert parse(text).to_json() == parse(EXAMPLE).to_json()


def test_configurations_differing_in_one_field_are_unequal() -> None:
    config = parse(EXAMPLE)
    retitled = parse(EXAMPLE.replace('"This week"', '"This week!"'))
    limited = parse(
        EXAMPLE.replace("max_delta = 3600000", "max_delta = 3600000\nvelocity_limit = 9")
    )
    for other in (retitled, limited):
        assert other != config
        assert other.to_json() != config.to_json()


def test_json_with_non_ascii_titles_is_escaped_and_canonical() -> None:
    config = parse('[boards.main]\ntitle = "Zürich 🏁"\n')
    assert "\\u00fc" in config.to_json()
    assert BoardsConfig.from_json(config.to_json()) == config


BAD_JSON = [
    ("", "stored boards configuration: not JSON (Expecting value: line 1 column 1 (char 0))"),
    ("[]", "stored boards configuration: not a JSON object"),
    (
        '{"boards":{},"metrics":{}}',
        "stored boards configuration: format is missing",
    ),
    (
        '{"boards":{},"format":2,"metrics":{}}',
        "stored boards configuration: format 2 is not 1",
    ),
    (
        '{"boards":{},"format":true,"metrics":{}}',
        "stored boards configuration: format true is not 1",
    ),
    (
        '{"boards":{},"format":1,"metrics":{},"x":1}',
        "stored boards configuration: unknown key 'x' (known: boards, format, metrics)",
    ),
    (
        '{"boards":{"main":{"aggregate":"sum","keep":null,"metric":"points","order":"desc",'
        '"reset":"never","timezone":"UTC"}},"format":1,'
        '"metrics":{"points":{"max_delta":1000,"min_delta":1,"velocity_limit":null}}}',
        "stored boards configuration: board 'main': title is missing",
    ),
    (
        '{"boards":{"main":{"aggregate":"sum","keep":null,"metric":"points","order":"desc",'
        '"reset":"never","timezone":"UTC","title":"T"}},"format":1,'
        '"metrics":{"points":{"max_delta":1000,"min_delta":1}}}',
        "stored boards configuration: metric 'points': velocity_limit is missing",
    ),
    (
        '{"boards":{"main":{"aggregate":"sum","keep":null,"metric":"points","order":"desc",'
        '"reset":"never","timezone":"UTC","title":"T"}},"format":1,'
        '"metrics":{"points":{"max_delta":1000.0,"min_delta":1,"velocity_limit":null}}}',
        "stored boards configuration: metric 'points': max_delta must be an integer from "
        "-2147483647 to 2147483647 (got 1000.0)",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_JSON)
def test_stored_json_is_held_to_the_same_rules(text: str, message: str) -> None:
    with pytest.raises(BoardsConfigError) as caught:
        BoardsConfig.from_json(text)
    assert str(caught.value) == message


# -- changes between the stored configuration and the new one ------------------------------------


def test_no_differences_between_equal_configurations() -> None:
    assert differences(parse(EXAMPLE), parse(EXAMPLE)) == []
    assert reinterpretations(parse(EXAMPLE), parse(EXAMPLE)) == []


@pytest.mark.parametrize(
    ("old", "new", "board", "field"),
    [
        ('metric = "lap_ms"', 'metric = "points"', "fastest-lap", "metric"),
        ('aggregate = "best"', 'aggregate = "sum"', "fastest-lap", "aggregate"),
        ('order = "asc"', 'order = "desc"', "fastest-lap", "order"),
        ('reset = "daily"', 'reset = "weekly"', "fastest-lap", "reset"),
        ('reset = "weekly"', 'reset = "monthly"', "weekly", "reset"),
        ('timezone = "Europe/Berlin"', 'timezone = "Europe/Paris"', "weekly", "timezone"),
    ],
)
def test_a_change_that_reinterprets_history(old: str, new: str, board: str, field: str) -> None:
    changed = parse(EXAMPLE.replace(old, new))
    assert reinterpretations(parse(EXAMPLE), changed) == [(board, field)]
    [difference] = differences(parse(EXAMPLE), changed)
    assert difference.reinterprets
    assert (difference.subject, difference.name, difference.field) == ("board", board, field)


def test_the_default_values_count_as_values() -> None:
    # A board that spells out timezone = "UTC" and one that leaves it out are the same board.
    explicit = parse('[boards.d]\ntitle = "T"\nreset = "daily"\ntimezone = "UTC"\n')
    implicit = parse('[boards.d]\ntitle = "T"\nreset = "daily"\n')
    assert reinterpretations(explicit, implicit) == []
    # Leaving out a key whose value was not the default is a change.
    berlin = parse('[boards.d]\ntitle = "T"\nreset = "daily"\ntimezone = "Europe/Berlin"\n')
    assert reinterpretations(berlin, implicit) == [("d", "timezone")]


def test_several_changes_are_listed_by_board_then_field() -> None:
    changed = parse(
        EXAMPLE.replace('reset = "daily"', 'reset = "monthly"')
        .replace('order = "asc"', 'order = "desc"')
        .replace('timezone = "Europe/Berlin"', 'timezone = "UTC"')
    )
    assert reinterpretations(parse(EXAMPLE), changed) == [
        ("fastest-lap", "order"),
        ("fastest-lap", "reset"),
        ("weekly", "timezone"),
    ]


def test_titles_keeps_and_metric_limits_may_change() -> None:
    changed = parse(
        EXAMPLE.replace('"This week"', '"Diese Woche"')
        .replace("keep = 52", "keep = 4")
        .replace("max_delta = 3600000", "max_delta = 600000\nvelocity_limit = 50")
        .replace("[metrics.points]\nmin_delta = 1", "[metrics.points]\nmin_delta = -5")
    )
    assert reinterpretations(parse(EXAMPLE), changed) == []
    found = differences(parse(EXAMPLE), changed)
    assert found == [
        Difference("metric", "lap_ms", "max_delta", 3_600_000, 600_000),
        Difference("metric", "lap_ms", "velocity_limit", None, 50),
        Difference("metric", "points", "min_delta", 1, -5),
        Difference("board", "weekly", "title", "This week", "Diese Woche"),
        Difference("board", "weekly", "keep", 52, 4),
    ]
    assert not any(d.reinterprets for d in found)


def test_boards_added_or_removed_are_not_reinterpretations() -> None:
    stored = parse(EXAMPLE)
    fewer = BoardsConfig(stored.metrics, {"main": stored.boards["main"]})
    more = BoardsConfig(
        stored.metrics, {**stored.boards, "daily": Board("daily", "Today", reset="daily")}
    )
    assert reinterpretations(stored, fewer) == []
    assert reinterpretations(stored, more) == []
    assert differences(stored, more) == []


def test_a_difference_in_one_line() -> None:
    stored = parse(EXAMPLE)
    changed = parse(EXAMPLE.replace('reset = "weekly"', 'reset = "daily"').replace("52", "7"))
    reset, keep = differences(stored, changed)
    assert reset.describe() == (
        "board 'weekly': reset changed from 'weekly' to 'daily', which would reinterpret the "
        "board's history; leave it as it was and declare a board with a new id instead"
    )
    assert keep.describe() == "board 'weekly': keep changed from 52 to 7"
    limit = Difference("metric", "points", "velocity_limit", 10_000, None)
    assert limit.describe() == "metric 'points': velocity_limit changed from 10000 to nothing"
