"""The export encoders on values the API never lets in but a database might hold: line breaks,
tabs and carriage returns in text cells, and the exact round trip of NDJSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

from scoreboard.exports import csv_lines, ndjson_lines, text_cell
from scoreboard.model import ExportRow

AT = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)


def row(rank: int, user_id: str, username: str, score: int) -> ExportRow:
    return ExportRow(rank=rank, user_id=user_id, username=username, score=score, reached_at=AT)


def test_formula_like_text_gets_a_leading_quote_and_nothing_else_does() -> None:
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert text_cell(f"{start}x") == f"'{start}x"
    for plain in ("x=1", "alice", "", " =1", "'=1"):
        assert text_cell(plain) == plain


def test_csv_quotes_line_breaks_and_keeps_big_numbers_exact() -> None:
    big = 2**53 - 1
    text = csv_lines(
        [row(1, "a", "line\nbreak", big), row(2, "b", "\tTab\r", -5)], header=True
    ).decode()
    assert text.startswith("rank,user_id,username,score,reached_at\r\n")
    assert '"line\nbreak"' in text
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[1] == ["1", "a", "line\nbreak", str(big), "2026-11-30T12:00:00.123456Z"]
    assert parsed[2][:4] == ["2", "b", "'\tTab\r", "-5"]


def test_ndjson_round_trips_every_value() -> None:
    rows = [row(1, "=a", 'line\nbreak "q" \u00e9', 2**53 - 1)]
    line = ndjson_lines(rows)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {
        "rank": 1,
        "user_id": "=a",
        "username": 'line\nbreak "q" \u00e9',
        "score": 2**53 - 1,
        "reached_at": "2026-11-30T12:00:00.123456Z",
    }
