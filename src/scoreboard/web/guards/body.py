"""Reading a request body within its size and time limits, and parsing the update's body strictly.

``read_body`` refuses a body over the limit (413) before reading it all, and one that has not all
arrived in time (408, ``BodyTimeout``). ``parse`` is the update body's strict parser:

Stricter than a generic JSON model on purpose: no type coercion (``"5"`` and ``true`` are not
integers), no unknown fields (no mass assignment), no duplicate keys (two parsers could
disagree on which one wins), no ``NaN``/``Infinity``, and integers of more than a few thousand
digits fail fast instead of costing quadratic time.

An integer is what JSON Schema calls one, a number with no fractional part, however it is
written: ``5.0`` and ``5e0`` are 5, as the OpenAPI document's ``"type": "integer"`` says and as
clients generated from it (or Python's ``json.dumps(5.0)``) may send. The value is decided
exactly (``Decimal``), never through a float: ``5.0000000000000001`` is not an integer.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from starlette.requests import ClientDisconnect, Request

from scoreboard.errors import InvalidRequest, PayloadTooLarge, ScoreboardError
from scoreboard.model import DEFAULT_METRIC
from scoreboard.web.extensions import body_arrived

FIELDS = frozenset({"user_id", "score_delta", "auth_token", "action_id", "metric"})
_MAX_DEPTH_MESSAGE = "the body is nested too deeply"


@dataclass(frozen=True, slots=True)
class UpdateBody:
    user_id: str
    score_delta: int
    auth_token: str | None
    action_id: str | None
    metric: str = DEFAULT_METRIC


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Duplicate
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(name)


_INTEGRAL_DIGITS = 30  # larger than any range allows: left as a Decimal (refused), never expanded


def _number(text: str) -> int | Decimal:
    """A number written with a fraction or an exponent: the integer it equals, if it is one."""
    value = Decimal(text)
    if value.adjusted() < _INTEGRAL_DIGITS and value == value.to_integral_value():
        return int(value)
    return value


# One decoder for every request: json.loads with hooks would build a new one each time.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates, parse_constant=_no_constants, parse_float=_number
)


def _load(raw: bytes) -> Any:
    try:
        # Decoded here, strictly: json.loads(bytes) would also take UTF-16 and UTF-32.
        return _DECODER.decode(raw.decode("utf-8"))
    except _Duplicate:
        raise InvalidRequest("the body has a duplicate key", code="invalid_json") from None
    except RecursionError:
        raise InvalidRequest(_MAX_DEPTH_MESSAGE, code="invalid_json") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, NaN, oversized integers
        raise InvalidRequest("the body is not valid JSON", code="invalid_json") from None


def parse(raw: bytes) -> UpdateBody:
    """The update body's fields, type-checked; range and format checks are the service's."""
    data = _load(raw)
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", code="invalid_body")
    unknown = set(data) - FIELDS
    if unknown:
        names = ", ".join(sorted(repr(name)[:40] for name in unknown)[:5])
        raise InvalidRequest(f"unknown field(s): {names}", code="unknown_field")
    for name in ("user_id", "score_delta"):
        if name not in data:
            raise InvalidRequest(f"the field '{name}' is required", code="missing_field")
    user_id, delta = data["user_id"], data["score_delta"]
    if not isinstance(user_id, str):
        raise InvalidRequest("user_id must be a string", code="invalid_user_id")
    if type(delta) is not int:
        raise InvalidRequest("score_delta must be a JSON integer", code="invalid_score_delta")
    token = data.get("auth_token")
    if token is not None and not isinstance(token, str):
        raise InvalidRequest("auth_token must be a string", code="invalid_auth_token")
    action_id = data.get("action_id")  # null, like auth_token's, is the same as leaving it out
    if action_id is not None and not isinstance(action_id, str):
        raise InvalidRequest("action_id must be a string", code="invalid_action_id")
    metric = data.get("metric")  # null is the same as leaving it out: points
    if metric is not None and not isinstance(metric, str):
        raise InvalidRequest("metric must be a string", code="invalid_metric")
    return UpdateBody(
        user_id, delta, token, action_id, DEFAULT_METRIC if metric is None else metric
    )


class BodyTimeout(ScoreboardError):
    """The body did not arrive in time (408; the connection is closed after the answer)."""

    code = "body_timeout"


async def read_body(request: Request, limit: int, deadline: float | None = None) -> bytes:
    """The request body, refusing (413) anything over ``limit`` before reading it all, and
    (408) a body that has not all arrived ``deadline`` seconds after the headers."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"the body must be at most {limit} bytes")
    try:
        if deadline is None or body_arrived(request.scope):  # nothing to wait for
            return await _read_all(request, limit)
        async with asyncio.timeout(deadline):
            return await _read_all(request, limit)
    except TimeoutError:
        raise BodyTimeout(f"the body must arrive within {deadline:g} s") from None
    except ClientDisconnect:  # nobody is left to answer; not an error of ours (no 500 log)
        raise InvalidRequest(
            "the client went away before sending the whole body", code="client_disconnected"
        ) from None


async def _read_all(request: Request, limit: int) -> bytes:
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body must be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
