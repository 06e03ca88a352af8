"""A period of a board as a file: CSV for spreadsheets, NDJSON as the lossless format.

Both are written chunk by chunk from the store's keyset walk (``ScoreStore.iter_ranked``), so
an export of a million rows holds one chunk in memory, never the period.

- **CSV** (RFC 4180): a header row ``rank,user_id,username,score,reached_at``, lines ending in
  CRLF, a field quoted when it holds a comma, a quote or a line break (quotes doubled). Numbers
  are written as numbers. A text cell (``user_id``, ``username``) that a spreadsheet would run as
  a formula, one starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return, gets a
  leading ``'`` (OWASP, "CSV Injection"): what a spreadsheet shows is then the text, and a
  reader that wants the exact value strips it, or reads the NDJSON instead.
- **NDJSON**: one JSON object per line with the exact values (no quote added, any character
  kept, integers exact): ``{"rank", "user_id", "username", "score", "reached_at"}``.

``reached_at`` is RFC 3339 UTC with microseconds: when the event that gave the user their
score was committed (the tie rule's "reached first").
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable

import orjson

from scoreboard.model import ExportRow

FORMATS = ("csv", "ndjson")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
COLUMNS = ("rank", "user_id", "username", "score", "reached_at")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula."""
    return "'" + value if value.startswith(_FORMULA_STARTS) else value


def _time(row: ExportRow) -> str:
    return row.reached_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def csv_lines(rows: Iterable[ExportRow], *, header: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    if header:
        writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            (row.rank, text_cell(row.user_id), text_cell(row.username), row.score, _time(row))
        )
    return out.getvalue().encode()


def ndjson_lines(rows: Iterable[ExportRow]) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "rank": row.rank,
                "user_id": row.user_id,
                "username": row.username,
                "score": row.score,
                "reached_at": _time(row),
            }
        )
        + b"\n"
        for row in rows
    )


async def encode(chunks: AsyncIterator[list[ExportRow]], form: str) -> AsyncIterator[bytes]:
    """The file, chunk by chunk (the CSV header first, even for an empty period)."""
    if form == "csv":
        yield csv_lines((), header=True)
    async for chunk in chunks:
        yield csv_lines(chunk) if form == "csv" else ndjson_lines(chunk)
