"""Logging set-up: plain text for people, or one JSON object per line for machines.

Log lines carry values a client chose (a rejected ``user_id``, a request path), and operators
find abusers by reading them, so no such value may forge or hide a line. The values are the
``extra`` fields and the %-arguments of a message (numbers excepted); in both formats each is cut
to :data:`MAX_VALUE_CHARS` characters (:func:`bounded`). In the text format each is also escaped
and, when needed, quoted (:func:`text_value`), and a traceback's lines are indented, so every line
that starts at the left margin starts a record, and every ``key=value`` after the message is one
of ours. The JSON format escapes by being JSON.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged too.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
}

MAX_VALUE_CHARS = 256
"""How much of one value a line shows; the rest is replaced by a marker saying how much."""

_SHORT_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_QUOTE_WHEN = (" ", '"', "=")
_TRACEBACK_INDENT = "  "


request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request being served (set by ``web.request_id``); on every line logged for it."""


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        value = request_id.get()
        if value is not None and not hasattr(record, "request_id"):
            record.request_id = value
        return True


# -- values ------------------------------------------------------------------------------------


def bounded(text: str) -> str:
    """``text``, or its first :data:`MAX_VALUE_CHARS` characters and ``...[+N chars]``."""
    if len(text) <= MAX_VALUE_CHARS:
        return text
    return f"{text[:MAX_VALUE_CHARS]}...[+{len(text) - MAX_VALUE_CHARS} chars]"


def escape(text: str) -> str:
    r"""``text`` with each character that could end, hide or fake a line, or blur where a value
    ends, written as a Python escape: ``\\``, ``\"``, ``\n``, ``\r``, ``\t``, and ``\xHH``,
    ``\uHHHH`` or ``\UHHHHHHHH`` for every other character ``str.isprintable`` refuses (control
    and format characters such as NUL, ESC or a bidi override, lone surrogates, unassigned code
    points, and every separator but the plain space: U+2028, U+2029, non-breaking spaces). The
    result reads back exactly under Python's string-escape rules."""
    if text.isprintable() and "\\" not in text and '"' not in text:
        return text  # the common case, without a loop
    return "".join(_SHORT_ESCAPES.get(char) or _printable(char) for char in text)


def _printable(text: str) -> str:
    """``text`` (our own: a message template, a traceback) with only the characters
    ``str.isprintable`` refuses escaped, so that it cannot break or hide a line either."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else _code_point(char) for char in text)


def _code_point(char: str) -> str:
    code = ord(char)
    if char in "\n\r\t":
        return _SHORT_ESCAPES[char]
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _is_number(value: object) -> bool:
    return isinstance(value, int | float)


def text_value(value: object) -> str:
    """One value as the text format writes it: numbers (and ``None``) as they are; anything else
    as ``escape(bounded(str(value)))``, in double quotes when that is empty or holds a space, a
    double quote or ``=``, so that it reads as exactly one value."""
    if value is None or _is_number(value):
        return str(value)
    text = escape(bounded(str(value)))
    if not text or any(mark in text for mark in _QUOTE_WHEN):
        return f'"{text}"'
    return text


def _json_text(text: str) -> str:
    """``text`` that orjson can write: it refuses a lone surrogate, which JSON allows in a
    request body (``"\\ud800"``), and would drop the whole line. Such a code point is written as
    the six characters of its escape instead."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def json_value(value: object) -> object:
    """One value as the JSON format writes it: JSON scalars as they are; anything else as
    :func:`bounded` ``str(value)``."""
    if value is None or isinstance(value, bool) or _is_number(value):
        return value
    return _json_text(bounded(str(value)))


def _message(record: logging.LogRecord, template: str, render: Callable[[Any], Any]) -> str:
    """The record's message with each %-argument but a number passed through ``render`` first
    (numbers stay numbers, for ``%d`` and ``%.0f``)."""
    args = record.args
    if not args:
        return template
    if isinstance(args, Mapping):
        return template % {k: v if _is_number(v) else render(v) for k, v in args.items()}
    return template % tuple(a if _is_number(a) else render(a) for a in args)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


# -- formatters --------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = _message(record, str(record.msg), lambda v: bounded(str(v)))
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _json_text(message),
        }
        for key, value in _extras(record).items():
            entry[key] = json_value(value)
        if record.exc_info:
            entry["exception"] = _json_text(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE key=value ...`` on one line, values as :func:`text_value`
    writes them; a traceback follows on lines that each start with two spaces."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = _message(record, _printable(str(record.msg)), text_value)
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={text_value(v)}" for k, v in extras.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if block:
                line += "".join(
                    f"\n{_TRACEBACK_INDENT}{_printable(part)}" for part in block.split("\n")
                )
        return line


def configure(fmt: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's loggers go through ours, so one format covers every line.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
