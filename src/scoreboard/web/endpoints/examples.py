"""The examples ``/openapi.json`` shows: of every request body and every answer, by operation.

``web.openapi`` puts them in the document (each operation's copies per board included), as the
media type's ``example``: a 200's from :data:`ANSWERS`, a request body's from :data:`REQUESTS`,
an error's from :data:`ERRORS` by status. tests/api/test_openapi.py asserts that every operation
has them and that each one is valid against the schema it illustrates; the examples phase of
the Schemathesis run (tests/api/test_schema.py) sends the request bodies.
"""

from __future__ import annotations

from typing import Any, Final

_AT: Final = "2026-11-27T10:00:00.000000Z"
_ROWS: Final = [
    {"rank": 1, "user_id": "bob", "username": "Bob", "score": 120},
    {"rank": 2, "user_id": "alice", "username": "Alice", "score": 95},
]
_PERIOD: Final = {"id": "all", "starts_at": None, "ends_at": None}
_BOARD: Final = {
    "id": "main",
    "title": "All time",
    "metric": "points",
    "aggregate": "sum",
    "order": "desc",
    "reset": "never",
    "timezone": "UTC",
    "period": _PERIOD,
}
_WEBHOOK: Final = {
    "id": "wh_0123456789abcdef",
    "url": "https://hooks.example.com/scoreboard",
    "events": ["top.entered", "top.left"],
    "boards": None,
    "enabled": True,
    "created_at": _AT,
    "disabled_at": None,
    "old_secret_until": None,
}
_SECRET: Final = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwiIzH4sQm0rE="  # noqa: S105 (an example)
_UPDATED: Final = {
    "user_id": "alice",
    "new_score": 95,
    "rank": 2,
    "boards": {"main": {"period": "all", "score": 95, "rank": 2}},
}
_STATUS: Final = {"user_id": "alice", "changed": True}
_JSON = "application/json"

ANSWERS: Final[dict[str, dict[str, Any]]] = {
    "update_score": {_JSON: _UPDATED},
    "top10": {_JSON: {"scores": _ROWS}},
    "board_page": {_JSON: {"scores": _ROWS, "total": 2, "offset": 0, "limit": 10}},
    "get_user": {
        _JSON: {
            "user_id": "alice",
            "username": "Alice",
            "score": 95,
            "rank": 2,
            "updated_at": _AT,
        }
    },
    "get_around": {_JSON: {"user_id": "alice", "rank": 2, "scores": _ROWS}},
    "get_history": {
        _JSON: {
            "user_id": "alice",
            "bucket": None,
            "events": [{"at": _AT, "delta": 25, "score": 95, "action_id": "level-1"}],
            "next_cursor": None,
        }
    },
    "list_boards": {_JSON: {"boards": [_BOARD]}},
    "get_board": {_JSON: _BOARD},
    "board_top10": {_JSON: {"board": "main", "period": "all", "scores": _ROWS}},
    "board_scores": {
        _JSON: {
            "board": "main",
            "period": "all",
            "scores": _ROWS,
            "total": 2,
            "offset": 0,
            "limit": 10,
        }
    },
    "board_user": {
        _JSON: {
            "board": "main",
            "period": "all",
            "user_id": "alice",
            "username": "Alice",
            "score": 95,
            "rank": 2,
            "updated_at": _AT,
        }
    },
    "board_around": {
        _JSON: {"board": "main", "period": "all", "user_id": "alice", "rank": 2, "scores": _ROWS}
    },
    "board_trajectory": {
        _JSON: {
            "board": "main",
            "user_id": "alice",
            "bucket": "day",
            "points": [{"at": _AT, "score": 95, "rank": 2}],
        }
    },
    "board_periods": {
        _JSON: {
            "periods": [
                {
                    "id": "all",
                    "starts_at": None,
                    "ends_at": None,
                    "entries": 2,
                    "leader": {"user_id": "bob", "username": "Bob", "score": 120},
                }
            ],
            "next": None,
        }
    },
    "board_export": {
        "text/csv": "rank,user_id,username,score,reached_at\r\n"
        f"1,bob,Bob,120,{_AT}\r\n2,alice,Alice,95,{_AT}\r\n",
        "application/x-ndjson": '{"rank":1,"user_id":"bob","username":"Bob","score":120,'
        f'"reached_at":"{_AT}"}}\n',
    },
    "admin_user": {
        _JSON: {
            "user_id": "alice",
            "username": "Alice",
            "created_at": _AT,
            "status": "active",
            "name_locked": False,
            "boards": [{"board": "main", "period": "all", "score": 95, "rank": 2}],
        }
    },
    "admin_erase": {
        _JSON: {"erased": True, "audit_target": "erased:3f2a9c0d41e8b7a6c5d4e3f2a1b0c9d8"}
    },
    "admin_events": {
        _JSON: {
            "events": [
                {
                    "event_id": 17,
                    "metric": "points",
                    "delta": 25,
                    "action_id": "level-1",
                    "source": "user",
                    "created_at": _AT,
                    "voided": False,
                }
            ],
            "next": None,
        }
    },
    "admin_audit": {
        _JSON: {
            "entries": [
                {
                    "id": 4,
                    "at": _AT,
                    "key": "ops",
                    "action": "void",
                    "target": "event:17",
                    "reason": "duplicate submission",
                    "details": {"user_id": "alice", "metric": "points", "delta": 25},
                }
            ],
            "next": None,
        }
    },
    "admin_void": {_JSON: {"event_id": 17, "voided": True, "changed": True}},
    "admin_restore": {_JSON: {"event_id": 17, "voided": False, "changed": True}},
    "admin_adjust": {_JSON: _UPDATED},
    "admin_rename": {
        _JSON: {"user_id": "alice", "username": "Alice B.", "name_locked": True, "changed": True}
    },
    "admin_unlock_name": {_JSON: {"user_id": "alice", "name_locked": False, "changed": True}},
    "admin_hide": {_JSON: {**_STATUS, "status": "hidden"}},
    "admin_unhide": {_JSON: {**_STATUS, "status": "active"}},
    "admin_ban": {_JSON: {**_STATUS, "status": "banned"}},
    "admin_unban": {_JSON: {**_STATUS, "status": "active"}},
    "admin_rollover": {
        _JSON: {
            "board": "season",
            "closed": {"id": "1", "starts_at": "2026-09-01T00:00:00.000000Z", "ends_at": _AT},
            "opened": {"id": "2", "starts_at": _AT, "ends_at": None},
        }
    },
    "admin_webhooks": {_JSON: {"webhooks": [_WEBHOOK]}},
    "admin_webhook_create": {_JSON: {**_WEBHOOK, "secret": _SECRET}},
    "admin_webhook_delete": {_JSON: {"id": "wh_0123456789abcdef", "deleted": True}},
    "admin_webhook_deliveries": {
        _JSON: {
            "deliveries": [
                {
                    "id": 8,
                    "message_id": "msg_2b1c0f9e8d7a6b5c4d3e2f1a",
                    "event": "top.entered",
                    "status": "delivered",
                    "attempts": 1,
                    "last_error": None,
                    "created_at": _AT,
                    "next_at": None,
                    "delivered_at": _AT,
                }
            ],
            "next": None,
        }
    },
    "admin_webhook_enable": {
        _JSON: {"id": "wh_0123456789abcdef", "enabled": True, "changed": True}
    },
    "admin_webhook_rotate_secret": {
        _JSON: {**_WEBHOOK, "old_secret_until": "2026-11-28T10:00:00.000000Z", "secret": _SECRET}
    },
    "admin_webhook_redeliver": {_JSON: {"id": 8, "status": "pending"}},
}
"""Each operation's 200, by media type."""

_REASON: Final = {"reason": "cheating reported in ticket 4521"}

REQUESTS: Final[dict[str, Any]] = {
    "update_score": {"user_id": "alice", "score_delta": 25, "action_id": "level-1"},
    "admin_erase": {"reason": "erasure request of 2026-11-27"},
    "admin_void": {"reason": "duplicate submission"},
    "admin_restore": {"reason": "voided by mistake"},
    "admin_adjust": {
        "metric": "points",
        "delta": 50,
        "action_id": "refund-4521",
        "reason": "points lost to an outage",
    },
    "admin_rename": {"username": "Alice B.", "reason": "the name broke the rules"},
    "admin_unlock_name": {"reason": "the user asked to use their own name again"},
    "admin_hide": _REASON,
    "admin_unhide": {"reason": "cleared after review"},
    "admin_ban": _REASON,
    "admin_unban": {"reason": "ban served"},
    "admin_rollover": {"reason": "season 1 ends"},
    "admin_webhook_create": {
        "url": "https://hooks.example.com/scoreboard",
        "events": ["top.entered", "top.left"],
        "boards": ["main"],
    },
}
"""Each operation's request body (JSON)."""

ERRORS: Final[dict[int, tuple[str, str]]] = {
    400: ("invalid_request", "score_delta must be an integer"),
    401: ("token_expired", "the token has expired"),
    403: ("forbidden", "this address may not use the admin API"),
    404: ("not_found", "user 'alice' has no score"),
    408: ("body_timeout", "the body did not arrive in time"),
    409: ("action_conflict", "action_id 'level-1' was used with another score_delta"),
    413: ("payload_too_large", "the body is over 16384 bytes"),
    429: ("rate_limited", "too many updates from this address: retry after 1 s"),
    500: ("internal_error", "an unexpected error occurred"),
    503: ("unavailable", "the store is unavailable"),
}
"""An error answer's example by status: ``{"error": code, "message": message}``."""
