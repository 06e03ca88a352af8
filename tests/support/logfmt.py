"""Reading the text log format back: the ``key=value`` pairs after a message, and a written
value as the string it stands for."""

from __future__ import annotations

import codecs
import re

# A value is bare (no space, quote or '=') or double-quoted with backslash escapes.
_PAIR = re.compile(r' (\w+)=("(?:[^"\\]|\\.)*"|[^ "=]*)')


def fields(line: str, message: str) -> dict[str, str]:
    """The pairs after ``: {message}`` in ``line``; the whole rest of the line must be pairs."""
    _, found, tail = line.partition(f": {message}")
    assert found, line
    pairs = _PAIR.findall(tail)
    assert "".join(f" {k}={v}" for k, v in pairs) == tail, f"not key=value pairs: {tail!r}"
    keys = [k for k, _ in pairs]
    assert len(set(keys)) == len(keys), f"a key twice: {tail!r}"
    return dict(pairs)


def unquote(value: str) -> str:
    """A written value read back with Python's string-escape rules (ASCII values only)."""
    if value.startswith('"'):
        value = value[1:-1]
    return codecs.decode(value.encode("ascii"), "unicode_escape")
