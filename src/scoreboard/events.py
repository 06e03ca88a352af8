"""The board event that crosses the bus, and the wire formats built from it.

A :class:`BoardChanged` is published once per change of the top of a board (membership, order or
a score in it). Its ``seq`` rises by one per change of that board and is the same on every
process. The bytes sent to clients are encoded here, once per event, never once per client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from scoreboard.model import RankedEntry


@dataclass(frozen=True, slots=True)
class BoardChanged:
    """The top of ``board`` changed: ``rankings`` is the new top, ``seq`` its sequence number.

    ``user_id`` and ``new_score`` name the update that caused the change (empty and 0 for a
    resynchronisation that no single update caused).
    """

    board: str
    seq: int
    user_id: str
    new_score: int
    rankings: tuple[RankedEntry, ...]

    def to_bytes(self) -> bytes:
        """Encode for the bus (see :meth:`from_bytes`)."""
        return orjson.dumps(
            {
                "board": self.board,
                "seq": self.seq,
                "user_id": self.user_id,
                "new_score": self.new_score,
                "rankings": [_entry(e) for e in self.rankings],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes | str) -> BoardChanged:
        raw = orjson.loads(data)
        return cls(
            board=raw["board"],
            seq=raw["seq"],
            user_id=raw["user_id"],
            new_score=raw["new_score"],
            rankings=tuple(
                RankedEntry(e["rank"], e["user_id"], e["username"], e["score"])
                for e in raw["rankings"]
            ),
        )


def _entry(e: RankedEntry) -> dict[str, Any]:
    return {"rank": e.rank, "user_id": e.user_id, "username": e.username, "score": e.score}


def rankings_json(rankings: tuple[RankedEntry, ...]) -> list[dict[str, Any]]:
    return [_entry(e) for e in rankings]


@dataclass(frozen=True, slots=True)
class EncodedBoard:
    """Everything a process serves about one board state, encoded once.

    ``top_body`` is the body of ``GET /api/scores/top10``; ``snapshot`` is the message a new
    socket gets; ``update`` the message every open socket gets (``None`` for the initial state,
    which no update caused).
    """

    event: BoardChanged
    top_body: bytes
    snapshot: str
    update: str | None

    @classmethod
    def build(cls, event: BoardChanged, *, initial: bool = False) -> EncodedBoard:
        rankings = rankings_json(event.rankings)
        snapshot = orjson.dumps(
            {"type": "SNAPSHOT", "data": {"rankings": rankings, "seq": event.seq}}
        ).decode()
        update = None
        if not initial:
            update = orjson.dumps(
                {
                    "type": "SCORE_UPDATE",
                    "data": {
                        "user_id": event.user_id,
                        "new_score": event.new_score,
                        "rankings": rankings,
                        "seq": event.seq,
                    },
                }
            ).decode()
        return cls(
            event=event,
            top_body=orjson.dumps({"scores": rankings}),
            snapshot=snapshot,
            update=update,
        )
