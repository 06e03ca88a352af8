"""The log formats against values a client chose: a rejected ``user_id`` or a request path must
not start a line of its own, hide in the line, pass as another ``key=value``, or make the line
long. The attack is the update route's audit line (``scoreboard.audit``, ``update rejected``)."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

import pytest

from scoreboard.logs import JsonFormatter, TextFormatter
from tests.support.logfmt import fields, unquote

MAX_VALUE_CHARS = 256  # what docs/operations.md promises

FORGED = (
    "x\n2026-11-30 20:00:00,000 WARNING scoreboard.audit: update rejected "
    "reason=wrong_user user_id=victim client=10.0.0.9"
)


def record(msg: str, *args: Any, exc_info: Any = None, **extra: Any) -> logging.LogRecord:
    return logging.getLogger("scoreboard.audit").makeRecord(
        "scoreboard.audit", logging.WARNING, __file__, 1, msg, args, exc_info, extra=extra
    )


def rejected(user_id: Any) -> logging.LogRecord:
    """What the update route logs when it refuses an update."""
    return record("update rejected", reason="invalid_user_id", user_id=user_id, client="10.0.0.7")


def text(rec: logging.LogRecord) -> str:
    return TextFormatter().format(rec)


# -- the text format ---------------------------------------------------------------------------


def test_a_newline_in_a_user_id_cannot_write_a_second_audit_line() -> None:
    line = text(rejected(FORGED))
    assert "\n" not in line
    values = fields(line, "update rejected")
    assert list(values) == ["reason", "user_id", "client"]  # no second user_id, no victim
    assert unquote(values["user_id"]) == FORGED
    assert values["client"] == "10.0.0.7"


@pytest.mark.parametrize(
    "user_id",
    [
        pytest.param("a\x00b", id="nul"),
        pytest.param("a\rb", id="carriage-return"),
        pytest.param("a\x1b[2Kb", id="terminal-escape"),
        pytest.param("a\x85b", id="c1-next-line"),
        pytest.param("a\u2028b\u2029c", id="unicode-line-separators"),
        pytest.param("a\u202eb", id="bidi-override"),
        pytest.param("a\u00a0user_id=victim", id="no-break-space"),
        pytest.param('a" user_id="victim', id="quote"),
        pytest.param("a user_id=victim", id="space"),
        pytest.param("a=b", id="equals"),
        pytest.param("a\\nb", id="a-literal-backslash-n"),
        pytest.param("", id="empty"),
    ],
)
def test_each_client_value_is_one_escaped_value_that_reads_back(user_id: str) -> None:
    line = text(rejected(user_id))
    assert line.isprintable(), line  # no control, format or separator character left
    values = fields(line, "update rejected")
    assert list(values) == ["reason", "user_id", "client"]
    assert unquote(values["user_id"]) == user_id


def test_nul_is_written_as_an_escape() -> None:
    line = text(rejected("a\x00b"))
    assert "\x00" not in line
    assert "user_id=a\\x00b " in line


def test_a_lone_surrogate_is_escaped() -> None:
    line = text(rejected("a\ud800b"))
    assert "user_id=a\\ud800b " in line
    line.encode("utf-8")  # writable as it is


def test_a_15_kb_value_is_cut_and_says_so() -> None:
    user_id = "A" * 15_000 + "tail"
    line = text(rejected(user_id))
    assert len(line) < 2 * MAX_VALUE_CHARS
    value = unquote(fields(line, "update rejected")["user_id"])
    assert value == "A" * MAX_VALUE_CHARS + f"...[+{15_004 - MAX_VALUE_CHARS} chars]"
    assert "tail" not in line


def test_every_extra_value_is_cut() -> None:
    line = text(record("x", a="1" * 5000, b=["2"] * 5000, c=b"3" * 5000))
    assert len(line) < 4 * MAX_VALUE_CHARS + 100


def test_a_value_that_escapes_to_more_characters_is_still_bounded() -> None:
    line = text(rejected("\x00" * 15_000))
    assert len(line) < 5 * MAX_VALUE_CHARS


def test_ordinary_values_are_written_as_before() -> None:
    line = text(
        record(
            "update rejected",
            reason="wrong_user",
            user_id="alice",
            client="127.0.0.1",
            request_id="rid-1",
            users=3,
            seconds=0.25,
            board=None,
        )
    )
    assert line.endswith(
        ": update rejected reason=wrong_user user_id=alice client=127.0.0.1 request_id=rid-1 "
        "users=3 seconds=0.25 board=None"
    )


def test_a_message_argument_is_escaped_quoted_and_cut_like_a_value() -> None:
    """``unexpected error on %s %s`` gets the request path, which the client chose."""
    path = "/api/x\n2026-11-30 20:00:00,000 WARNING scoreboard.audit: update rejected user_id=v"
    line = text(record("unexpected error on %s %s", "GET", path + "z" * 15_000, request_id="r"))
    assert "\n" not in line
    assert len(line) < 2 * MAX_VALUE_CHARS
    match = re.search(r': unexpected error on GET ("(?:[^"\\]|\\.)*") request_id=r$', line)
    assert match, line  # the path is one quoted value, whatever it holds
    sent = path + "z" * 15_000
    cut = len(sent) - MAX_VALUE_CHARS
    assert unquote(match[1]) == sent[:MAX_VALUE_CHARS] + f"...[+{cut} chars]"


def test_numbers_in_a_message_keep_their_format() -> None:
    line = text(record("closing a socket that could not be written to for %.0f s", 10.4))
    assert line.endswith(": closing a socket that could not be written to for 10 s")
    assert text(record("board event %d not published: %s", 7, "Connection refused")).endswith(
        ': board event 7 not published: "Connection refused"'
    )


def test_a_traceback_never_starts_a_line_at_the_margin() -> None:
    try:
        raise ValueError(FORGED)
    except ValueError:
        exc_info = sys.exc_info()
    line = text(record("unexpected error on %s %s", "GET", "/x", exc_info=exc_info, request_id="r"))
    first, *rest = line.split("\n")
    assert first.endswith("unexpected error on GET /x request_id=r")  # the fields before it
    assert rest[0] == "  Traceback (most recent call last):"
    assert any("ValueError: x" in part for part in rest)
    assert all(part.startswith("  ") for part in rest)  # the forged line is indented too


# -- the JSON format ---------------------------------------------------------------------------


def test_json_keeps_a_forged_line_inside_its_value() -> None:
    line = JsonFormatter().format(rejected(FORGED + "\x00"))
    assert "\n" not in line
    assert json.loads(line)["user_id"] == FORGED + "\x00"


def test_json_cuts_a_value_exactly_as_the_text_format_does() -> None:
    user_id = "B" * 15_000
    line = JsonFormatter().format(rejected(user_id))
    assert len(line) < 2 * MAX_VALUE_CHARS
    written = json.loads(line)["user_id"]
    assert written == unquote(fields(text(rejected(user_id)), "update rejected")["user_id"])
    assert written.startswith("B" * MAX_VALUE_CHARS + "...[+")


def test_json_cuts_message_arguments_too() -> None:
    line = JsonFormatter().format(record("unexpected error on %s %s", "GET", "/" * 15_000))
    assert len(json.loads(line)["message"]) < 2 * MAX_VALUE_CHARS


def test_json_writes_a_line_for_a_lone_surrogate() -> None:
    """orjson refuses lone surrogates, which a JSON body may carry (``"\\ud800"``): the line
    must still be written, not dropped for a "Logging error"."""
    line = JsonFormatter().format(rejected("a\ud800b"))
    assert json.loads(line)["user_id"] == "a\\ud800b"


def test_json_keeps_numbers_and_none() -> None:
    entry = json.loads(JsonFormatter().format(record("x", users=3, seconds=0.5, board=None)))
    assert (entry["users"], entry["seconds"], entry["board"]) == (3, 0.5, None)
