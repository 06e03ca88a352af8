"""The published AsyncAPI 3.0 document of the live channels (``/asyncapi.json``).

``/ws/scoreboard``, ``/ws/boards/{board}`` and ``/ws`` (docs/live.md) as a machine-readable
contract: every message either side sends, each with a JSON Schema payload and an example, the
handshake refusals and close codes in each channel's description and in ``x-close-codes``. The
document is built here, from the same constants the channels apply (limits, id and board forms,
error codes), once per process: it does not depend on the settings or the served boards, so a
client generated from it fits every server of this version.

The payloads of what the server sends are exact (``additionalProperties: false``): the test
suite validates every frame its live tests receive against them (tests/support/live_frames.py),
so a message that drifts from this document fails the test that received it. A new field is
therefore a change of this document too; clients should still ignore fields they do not know.
tests/api/test_asyncapi.py runs the official parser (``@asyncapi/parser``, from npm) on the
served document.
"""

from __future__ import annotations

import functools
from typing import Any, Final

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from scoreboard import __version__
from scoreboard.auth.decision import TOKEN_MAX
from scoreboard.boards import NAME_PATTERN
from scoreboard.model import MAX_SCORE, TOP_K, USER_ID_PATTERN, USER_ID_RULE
from scoreboard.periods import PERIOD_FORMS
from scoreboard.subscriptions import MESSAGES_MAX, RADIUS_MAX, SUBSCRIPTIONS_MAX, TOP_LIMIT_MAX
from scoreboard.web.live.multiplex import DEFAULT_LIMIT, DEFAULT_RADIUS, ID_MAX

router = APIRouter(include_in_schema=False)

PATH = "/asyncapi.json"
SEED_CHANNEL = "/ws/scoreboard"
BOARD_CHANNEL = "/ws/boards/{board}"
SUBSCRIPTIONS_CHANNEL = "/ws"

Schema = dict[str, Any]

ERROR_CODES: Final = (
    "invalid_json",
    "invalid_id",
    "invalid_type",
    "duplicate_id",
    "too_many_subscriptions",
    "invalid_board",
    "unknown_board",
    "invalid_view",
    "invalid_limit",
    "invalid_radius",
    "invalid_user_id",
    "unknown_subscription",
    "unavailable",
    # A ``me`` view's token refused: the codes of the update's 401 that a login token can earn.
    "token_missing",
    "token_invalid",
    "token_expired",
    "token_not_yet_valid",
    "token_lifetime_too_long",
    "grant_not_accepted",
)
"""Every ``error`` a ``/ws`` error message can carry (docs/live.md's table)."""

ME_EVENTS: Final = ("rank_changed", "overtaken", "entered_top", "left_top")

_BOARD_ID: Final[Schema] = {
    "type": "string",
    "pattern": f"^{NAME_PATTERN}$",
    "description": "a board id",
}
_PERIOD_ID: Final[Schema] = {
    "type": "string",
    "anyOf": [{"pattern": pattern} for pattern in dict.fromkeys(PERIOD_FORMS.values())],
    "description": "a period id: 'all', a day (2026-11-27), an ISO week (2026-W48), a month "
    "(2026-11) or a season number, as the board resets",
}
_USER_ID: Final[Schema] = {"type": "string", "pattern": USER_ID_PATTERN}
_SCORE: Final[Schema] = {"type": "integer", "minimum": -MAX_SCORE, "maximum": MAX_SCORE}

ROW: Final[Schema] = {
    "type": "object",
    "description": "one row of a board: its 1-based rank, who, their display name and score",
    "required": ["rank", "user_id", "username", "score"],
    "additionalProperties": False,
    "properties": {
        "rank": {"type": "integer", "minimum": 1},
        "user_id": _USER_ID,
        "username": {"type": "string"},
        "score": _SCORE,
    },
}

_EXAMPLE_ROWS: Final = [
    {"rank": 1, "user_id": "bob", "username": "Bob", "score": 120},
    {"rank": 2, "user_id": "alice", "username": "Alice", "score": 95},
]


def _rankings() -> Schema:
    return {
        "type": "array",
        "maxItems": TOP_K,
        "items": {"$ref": "#/components/schemas/Row"},
        "description": f"the whole top {TOP_K}, best first",
    }


def _push(type_: str, data: Schema, required: list[str], description: str) -> Schema:
    """A push channel's message: ``{"type": type_, "data": {...}}``."""
    return {
        "type": "object",
        "description": description,
        "required": ["type", "data"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": type_},
            "data": {
                "type": "object",
                "required": required,
                "additionalProperties": False,
                "properties": data,
            },
        },
    }


_SEQ_BOARD: Final[Schema] = {
    "type": "integer",
    "minimum": 0,
    "description": "the board's sequence number, the same on every process: one more for "
    "every change of its top",
}


def _push_messages(board: bool) -> dict[str, Schema]:
    """The push channels' messages: the seed's shapes, or with ``board`` and ``period``."""
    where: Schema = {"board": _BOARD_ID, "period": _PERIOD_ID} if board else {}
    keys = ["board", "period"] if board else []
    example_where = {"board": "main", "period": "all"} if board else {}
    snapshot = _push(
        "SNAPSHOT",
        {**where, "rankings": _rankings(), "seq": _SEQ_BOARD},
        [*keys, "rankings", "seq"],
        "the board now: sent on connect, and in place of an update for a board no single "
        "update made (a rebuilt index, a catch-up)",
    )
    update = _push(
        "SCORE_UPDATE",
        {
            **where,
            "user_id": {**_USER_ID, "description": "whose update changed the top"},
            "new_score": {**_SCORE, "description": "their score after it"},
            "rankings": _rankings(),
            "seq": _SEQ_BOARD,
        },
        [*keys, "user_id", "new_score", "rankings", "seq"],
        "the top changed (membership, order or a score in it)",
    )
    prefix = "Board" if board else ""
    return {
        f"{prefix}Snapshot": _message(
            "SNAPSHOT",
            snapshot,
            {"type": "SNAPSHOT", "data": {**example_where, "rankings": _EXAMPLE_ROWS, "seq": 41}},
        ),
        f"{prefix}ScoreUpdate": _message(
            "SCORE_UPDATE",
            update,
            {
                "type": "SCORE_UPDATE",
                "data": {
                    **example_where,
                    "user_id": "alice",
                    "new_score": 95,
                    "rankings": _EXAMPLE_ROWS,
                    "seq": 42,
                },
            },
        ),
    }


def _period_started() -> Schema:
    payload = _push(
        "PERIOD_STARTED",
        {
            "board": _BOARD_ID,
            "period": _PERIOD_ID,
            "previous": {**_PERIOD_ID, "description": "the period that ended"},
            "rankings": _rankings(),
            "seq": _SEQ_BOARD,
        },
        ["board", "period", "previous", "rankings", "seq"],
        "a period of the board ended (a clock reset, or an operator's rollover): the new "
        "period's top (usually empty). The same message on both push channels.",
    )
    example = {
        "type": "PERIOD_STARTED",
        "data": {
            "board": "daily",
            "period": "2026-11-28",
            "previous": "2026-11-27",
            "rankings": [],
            "seq": 43,
        },
    }
    return _message("PERIOD_STARTED", payload, example)


def _message(title: str, payload: Schema, example: Any, summary: str | None = None) -> Schema:
    message: Schema = {
        "name": title,
        "title": title,
        "contentType": "application/json",
        "payload": payload,
        "examples": [{"name": "example", "payload": example}],
    }
    if summary is not None:
        message["summary"] = summary
    return message


_SUB_ID: Final[Schema] = {
    "type": "string",
    "minLength": 1,
    "maxLength": ID_MAX,
    "description": "the subscription's id, of the client's choosing, unique among its open "
    "subscriptions",
}
_STATE_SEQ: Final[Schema] = {
    "type": "integer",
    "minimum": 1,
    "description": "the subscription's own: 1 for its snapshot, one more for every state of "
    "its view (a gap: states were skipped for a slow socket)",
}


def _state(kind: str) -> Schema:
    return {
        "type": "object",
        "required": ["type", "id", "board", "period", "seq", "rows"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": kind},
            "id": _SUB_ID,
            "board": _BOARD_ID,
            "period": _PERIOD_ID,
            "seq": _STATE_SEQ,
            "rows": {
                "type": "array",
                "maxItems": TOP_LIMIT_MAX,
                "items": {"$ref": "#/components/schemas/Row"},
                "description": "the whole view, best first (empty: nobody there yet)",
            },
        },
    }


def _subscribe() -> Schema:
    common: Schema = {
        "type": {"const": "subscribe"},
        "id": _SUB_ID,
        "board": {**_BOARD_ID, "description": "a served board (always its current period)"},
    }
    top = {
        "title": "top",
        "type": "object",
        "required": ["type", "id", "board", "view"],
        "properties": {
            **common,
            "view": {"const": "top"},
            "limit": {
                "type": "integer",
                "minimum": 1,
                "maximum": TOP_LIMIT_MAX,
                "default": DEFAULT_LIMIT,
                "description": "how many rows from the first",
            },
        },
    }
    around = {
        "title": "around",
        "type": "object",
        "required": ["type", "id", "board", "view", "user_id"],
        "properties": {
            **common,
            "view": {"const": "around"},
            "user_id": {**_USER_ID, "description": f"the user to follow: {USER_ID_RULE}"},
            "radius": {
                "type": "integer",
                "minimum": 1,
                "maximum": RADIUS_MAX,
                "default": DEFAULT_RADIUS,
                "description": "rows above and below the user",
            },
        },
    }
    me = {
        "title": "me",
        "type": "object",
        "required": ["type", "id", "board", "view", "auth_token"],
        "properties": {
            **common,
            "view": {"const": "me"},
            "auth_token": {
                "type": "string",
                "maxLength": TOKEN_MAX,
                "description": "the user's login token, checked as an update's token in user "
                "mode (a score grant is refused); never logged, stored or sent back",
            },
        },
    }
    return {
        "description": "subscribe to a view of a board; answered with the subscription's "
        "snapshot, or an error",
        "oneOf": [top, around, me],
    }


def _event() -> Schema:
    by: Schema = {
        "description": "for overtaken: who passed the user, with their new score; else null",
        "anyOf": [
            {
                "type": "object",
                "required": ["user_id", "username", "score"],
                "additionalProperties": False,
                "properties": {
                    "user_id": _USER_ID,
                    "username": {"type": "string"},
                    "score": _SCORE,
                },
            },
            {"type": "null"},
        ],
    }
    return {
        "type": "object",
        "description": "a change of a me view's user's place, after the update that shows it",
        "required": ["type", "id", "event", "board", "period", "rank", "score", "by"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "event"},
            "id": _SUB_ID,
            "event": {"enum": list(ME_EVENTS)},
            "board": _BOARD_ID,
            "period": _PERIOD_ID,
            "rank": {
                "description": "the user's rank after the change; null once off the board",
                "anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
            },
            "score": {
                "description": "the user's score after the change; null once off the board",
                "anyOf": [_SCORE, {"type": "null"}],
            },
            "by": by,
        },
    }


def _error() -> Schema:
    return {
        "type": "object",
        "description": "a client message the server will not act on, or a subscription that "
        "ended (its board is no longer served); the socket stays open",
        "required": ["type", "id", "error", "message"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "error"},
            "id": {
                "description": "the subscription's id; null when the message had none "
                "(invalid_json, invalid_id)",
                "anyOf": [{"type": "string"}, {"type": "null"}],
            },
            "error": {"enum": list(ERROR_CODES)},
            "message": {"type": "string", "minLength": 1, "description": "for people"},
        },
    }


def _subscription_messages() -> dict[str, Schema]:
    rows = [{"rank": 4, "user_id": "bob", "username": "Bob", "score": 90}]
    where = {"board": "main", "period": "all"}
    return {
        "Subscribe": _message(
            "subscribe",
            _subscribe(),
            {"type": "subscribe", "id": "s1", "board": "main", "view": "top", "limit": 10},
        ),
        "Unsubscribe": _message(
            "unsubscribe",
            {
                "type": "object",
                "description": "end a subscription: not answered (an error if it is not open); "
                "nothing more is sent for that id",
                "required": ["type", "id"],
                "properties": {"type": {"const": "unsubscribe"}, "id": _SUB_ID},
            },
            {"type": "unsubscribe", "id": "s1"},
        ),
        "ViewSnapshot": _message(
            "snapshot",
            {
                **_state("snapshot"),
                "description": "a subscription's view, whole: its first message, and the first "
                "of every new period",
            },
            {"type": "snapshot", "id": "s2", **where, "seq": 1, "rows": rows},
        ),
        "ViewUpdate": _message(
            "update",
            {**_state("update"), "description": "the subscription's view changed: whole again"},
            {"type": "update", "id": "s2", **where, "seq": 2, "rows": rows},
        ),
        "MeEvent": _message(
            "event",
            _event(),
            {
                "type": "event",
                "id": "s3",
                "event": "overtaken",
                **where,
                "rank": 12,
                "score": 90,
                "by": {"user_id": "carol", "username": "Carol", "score": 95},
            },
        ),
        "Error": _message(
            "error",
            _error(),
            {
                "type": "error",
                "id": "s1",
                "error": "unknown_board",
                "message": "there is no board 'wekly'",
            },
        ),
    }


ADMISSION = (
    "Admitted before the handshake completes: the page's `Origin` must be one of "
    "`SCOREBOARD_ALLOWED_ORIGINS` (else 403 `origin_not_allowed`), and the process and the "
    "client address must be under their socket caps (`SCOREBOARD_WS_MAX_CONNECTIONS`: 503, "
    "`SCOREBOARD_WS_MAX_PER_ADDRESS`: 429, both `too_many_sockets` with `Retry-After`). A "
    'refusal is an HTTP answer with the JSON error body `{"error", "message"}`.'
)

_LIMITS: Final = (
    (1008, "the client sent more than SCOREBOARD_WS_MAX_FRAMES_PER_SECOND frames a second"),
    (1009, "a client message over SCOREBOARD_WS_MAX_MESSAGE bytes"),
)
PUSH_CLOSE_CODES: Final = (
    (1001, "the server is going away (shutdown), or the board is no longer served: reconnect"),
    *_LIMITS,
)
SUBSCRIPTIONS_CLOSE_CODES: Final = (
    (1001, "the server is going away (shutdown): reconnect and subscribe again (a board that "
     "is no longer served ends its subscriptions with an unknown_board error instead)"),
    *_LIMITS,
    (1013, f"more than {MESSAGES_MAX} events and errors waiting for a slow socket: reconnect "
     "and subscribe again"),
)  # fmt: skip


def _close_codes(codes: tuple[tuple[int, str], ...]) -> tuple[str, list[dict[str, Any]]]:
    table = "\n".join(f"| {code} | {why} |" for code, why in codes)
    text = (
        "\n\nClose codes (a socket that cannot be written to for `SCOREBOARD_WS_SEND_TIMEOUT` "
        "is closed too, but cannot read the code):\n\n| code | when |\n|---|---|\n" + table
    )
    return text, [{"code": code, "when": why} for code, why in codes]


def _ws_binding() -> Schema:
    return {
        "ws": {
            "method": "GET",
            "headers": {
                "type": "object",
                "properties": {
                    "Origin": {
                        "type": "string",
                        "description": "a browser's page origin: one of SCOREBOARD_ALLOWED_ORIGINS",
                    }
                },
            },
            "bindingVersion": "0.1.0",
        }
    }


def _channels() -> Schema:
    push_text, push_codes = _close_codes(PUSH_CLOSE_CODES)
    multi_text, multi_codes = _close_codes(SUBSCRIPTIONS_CLOSE_CODES)

    def refs(*names: str) -> dict[str, Any]:
        return {_lower(n): {"$ref": f"#/components/messages/{n}"} for n in names}

    return {
        "scoreboard": {
            "address": SEED_CHANNEL,
            "title": "The default board (push only)",
            "description": "The default board's top, pushed: a SNAPSHOT on connect, then a "
            "SCORE_UPDATE for every change of the top and a PERIOD_STARTED when a period "
            "ends. What the client sends is read and dropped. A slow socket skips boards "
            "(it always gets the newest, with a seq gap). " + ADMISSION + push_text,
            "messages": refs("Snapshot", "ScoreUpdate", "PeriodStarted"),
            "bindings": _ws_binding(),
            "x-close-codes": push_codes,
        },
        "board": {
            "address": BOARD_CHANNEL,
            "title": "One board (push only)",
            "description": "A served board's current period, pushed: the seed channel's "
            "messages with `board` and `period` added. An unknown board is refused before "
            "the handshake (404 `unknown_board`; 400 `invalid_board` for an id of the wrong "
            "form). " + ADMISSION + push_text,
            "parameters": {
                "board": {
                    "description": f"a served board's id ({NAME_PATTERN}); GET /api/boards "
                    "lists them",
                    "examples": ["main"],
                }
            },
            "messages": refs("BoardSnapshot", "BoardScoreUpdate", "PeriodStarted"),
            "bindings": _ws_binding(),
            "x-close-codes": push_codes,
        },
        "subscriptions": {
            "address": SUBSCRIPTIONS_CHANNEL,
            "title": "Many subscriptions on one socket",
            "description": f"JSON text messages both ways. Up to {SUBSCRIPTIONS_MAX} "
            "subscriptions per socket, each to a view (`top`, `around`, `me`) of a served "
            "board's current period. Client messages are handled one at a time, in order; "
            "errors are messages, not closes. " + ADMISSION + multi_text,
            "messages": refs(
                "Subscribe", "Unsubscribe", "ViewSnapshot", "ViewUpdate", "MeEvent", "Error"
            ),
            "bindings": _ws_binding(),
            "x-close-codes": multi_codes,
        },
    }


def _lower(name: str) -> str:
    return name[0].lower() + name[1:]


def _operations() -> Schema:
    def op(
        action: str, channel: str, names: list[str], summary: str, **extra: Any
    ) -> dict[str, Any]:
        return {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": summary,
            "messages": [{"$ref": f"#/channels/{channel}/messages/{_lower(n)}"} for n in names],
            **extra,
        }

    return {
        "pushDefaultBoard": op(
            "send",
            "scoreboard",
            ["Snapshot", "ScoreUpdate", "PeriodStarted"],
            "The server pushes the default board's top.",
        ),
        "pushBoard": op(
            "send",
            "board",
            ["BoardSnapshot", "BoardScoreUpdate", "PeriodStarted"],
            "The server pushes one board's top.",
        ),
        "receiveSubscribe": op(
            "receive",
            "subscriptions",
            ["Subscribe"],
            "The client subscribes to a view; the subscription's snapshot (or an error) "
            "answers it before the next client message is read.",
            reply={
                "channel": {"$ref": "#/channels/subscriptions"},
                "messages": [
                    {"$ref": "#/channels/subscriptions/messages/viewSnapshot"},
                    {"$ref": "#/channels/subscriptions/messages/error"},
                ],
            },
        ),
        "receiveUnsubscribe": op(
            "receive",
            "subscriptions",
            ["Unsubscribe"],
            "The client ends a subscription (answered only by an unknown_subscription error).",
        ),
        "sendViewStates": op(
            "send",
            "subscriptions",
            ["ViewSnapshot", "ViewUpdate"],
            "The server sends a subscription's view whenever it changes (the newest only, "
            "to a slow socket).",
        ),
        "sendMeEvents": op(
            "send",
            "subscriptions",
            ["MeEvent"],
            "The server tells a me view's user of their rank changes (every one, in order).",
        ),
        "sendErrors": op(
            "send",
            "subscriptions",
            ["Error"],
            "The server refuses a client message, or ends a subscription whose board is gone.",
        ),
    }


@functools.cache
def document() -> dict[str, Any]:
    """The AsyncAPI document (built once; callers must not change it)."""
    messages = {
        **_push_messages(board=False),
        **_push_messages(board=True),
        "PeriodStarted": _period_started(),
        **_subscription_messages(),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Scoreboard live channels",
            "version": __version__,
            "description": "The WebSocket channels of a Scoreboard server: every change of a "
            "board's top pushed to open pages, and views of any board (top N, around a user, "
            "a user's own row) on one socket. The HTTP API is described by /openapi.json.",
            "license": {"name": "MIT"},
        },
        "servers": {
            "plain": {
                "host": "{host}",
                "protocol": "ws",
                "description": "the server that serves this document, over plain HTTP",
                "variables": {"host": {"default": "127.0.0.1:8000"}},
            },
            "tls": {
                "host": "{host}",
                "protocol": "wss",
                "description": "the same behind a TLS-terminating proxy (pages on https)",
                "variables": {"host": {"default": "scores.example"}},
            },
        },
        "defaultContentType": "application/json",
        "channels": _channels(),
        "operations": _operations(),
        "components": {"schemas": {"Row": ROW}, "messages": messages},
    }


@functools.cache
def _body() -> bytes:
    return orjson.dumps(document())


@router.get(PATH)
async def asyncapi() -> Response:
    return Response(_body(), media_type="application/json")
