"""The ranking rule and the input rules, without I/O."""

from __future__ import annotations

import re

import pytest

from scoreboard.model import (
    ACTION_ID_PATTERN,
    is_valid_action_id,
    is_valid_delta,
    is_valid_user_id,
    rank_key,
)


def test_higher_score_ranks_first() -> None:
    keys = [rank_key(10, 1, "low"), rank_key(30, 2, "high"), rank_key(20, 3, "mid")]
    assert [k[2] for k in sorted(keys)] == ["high", "mid", "low"]


def test_equal_scores_rank_who_reached_first() -> None:
    # "zed" reached 50 at event 4, "amy" at event 9: zed ranks higher despite its name.
    keys = [rank_key(50, 9, "amy"), rank_key(50, 4, "zed")]
    assert [k[2] for k in sorted(keys)] == ["zed", "amy"]


@pytest.mark.parametrize("value", ["a", "A-b_c.d:e@f", "x" * 64, "0123"])
def test_valid_user_ids(value: str) -> None:
    assert is_valid_user_id(value)


@pytest.mark.parametrize("value", ["", "x" * 65, "a b", "é", "a/b", "a\n", 5, None])
def test_invalid_user_ids(value: object) -> None:
    assert not is_valid_user_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "a",
        "level-3 finished",
        "x" * 128,
        "ünïcödé",
        "no\u00a0break",  # a no-break space is not invisible
        "\U0001f3c6 cup",  # outside the BMP
        "\ue000",  # private use
        "\u0378",  # unassigned today: the rule must not move with the Unicode version
    ],
)
def test_valid_action_ids(value: str) -> None:
    assert is_valid_action_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x" * 129,
        "a\nb",
        "tab\there",
        "\x00",
        "\x7f",
        "\x85",  # C1 next line
        "a\u2028b",  # line separator
        "a\u202eb",  # right-to-left override
        "zero\u200bwidth",
        "\ufeffbom",
        "soft\u00adhyphen",
        "\ud800",  # a lone surrogate, which a JSON escape can make: not text
        7,
        None,
    ],
)
def test_invalid_action_ids(value: object) -> None:
    assert not is_valid_action_id(value)


def test_the_action_id_rule_is_the_published_pattern() -> None:
    """The OpenAPI document states ``ACTION_ID_PATTERN``; the server applies nothing more than
    it (but for lone surrogates, which are no JSON Schema string)."""
    for code in range(0x30000):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        assert is_valid_action_id(char) is (re.search(ACTION_ID_PATTERN, char) is not None), code


@pytest.mark.parametrize("value", [1, 500, 1000])
def test_deltas_in_range(value: int) -> None:
    assert is_valid_delta(value, 1, 1000)


@pytest.mark.parametrize("value", [0, -1, 1001, 5.0, True, "5", None])
def test_deltas_out_of_range_or_not_integers(value: object) -> None:
    assert not is_valid_delta(value, 1, 1000)


def test_zero_is_refused_even_inside_the_range() -> None:
    assert not is_valid_delta(0, -10, 10)
    assert is_valid_delta(-3, -10, 10)
