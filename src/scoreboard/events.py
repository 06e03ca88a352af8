"""The board events that cross the bus, and the wire formats built from them.

A :class:`BoardChanged` is published once per change of the top of a board in its current
period (membership, order or a score in it), and once when a new period starts. Its ``seq``
rises by one per change of that board and is the same on every process. The bytes sent to
clients are encoded here, once per event, never once per client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from scoreboard.model import RankedEntry


@dataclass(frozen=True, slots=True)
class BoardChanged:
    """The top of ``board`` in ``period`` changed: ``rankings`` is the new top, ``seq`` its
    sequence number.

    ``user_id`` and ``new_score`` name the update that caused the change (empty and 0 for a
    resynchronisation that no single update caused). ``previous`` is set when the change is a
    new period starting (``PERIOD_STARTED``): it names the period that ended, and ``rankings``
    is the new period's top (empty, or what was already committed in it).
    """

    board: str
    seq: int
    user_id: str
    new_score: int
    rankings: tuple[RankedEntry, ...]
    period: str = "all"
    previous: str | None = None

    def to_bytes(self) -> bytes:
        """Encode for the bus (see :meth:`from_bytes`)."""
        return orjson.dumps(
            {
                "board": self.board,
                "period": self.period,
                "previous": self.previous,
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
            period=raw.get("period", "all"),
            previous=raw.get("previous"),
        )


@dataclass(frozen=True, slots=True)
class StandingMoved:
    """One user's place on ``board`` in ``period`` changed: ranked ``before`` the write and
    ``after`` it (``None``: not on the board). Published for every stored write, whether or not
    the top changed, so that each process can bring the ``/ws`` views of its own sockets up to
    date (``scoreboard.subscriptions``): only the entries ranked between ``before`` and
    ``after`` moved. Both ``None`` means "unknown": any view of the board may have changed (an
    operator's action); the views are then read again.
    """

    board: str
    period: str
    user_id: str
    username: str
    score: int
    before: int | None
    after: int | None

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "kind": "moved",
                "board": self.board,
                "period": self.period,
                "user_id": self.user_id,
                "username": self.username,
                "score": self.score,
                "before": self.before,
                "after": self.after,
            }
        )


BoardEvent = BoardChanged | StandingMoved
"""What crosses the bus, on one channel per board."""


def decode_event(data: bytes | str) -> BoardEvent:
    """The event :meth:`BoardChanged.to_bytes` or :meth:`StandingMoved.to_bytes` encoded.
    ``ValueError``, ``KeyError`` or ``TypeError`` for anything else."""
    raw = orjson.loads(data)
    if raw.get("kind") != "moved":
        return BoardChanged.from_bytes(data)
    return StandingMoved(
        board=raw["board"],
        period=raw["period"],
        user_id=raw["user_id"],
        username=raw["username"],
        score=raw["score"],
        before=raw["before"],
        after=raw["after"],
    )


def _entry(e: RankedEntry) -> dict[str, Any]:
    return {"rank": e.rank, "user_id": e.user_id, "username": e.username, "score": e.score}


def rankings_json(rankings: tuple[RankedEntry, ...]) -> list[dict[str, Any]]:
    return [_entry(e) for e in rankings]


@dataclass(frozen=True, slots=True)
class Encoding:
    """One board state as one channel shows it: the top-10 body, the message a new socket gets
    (``snapshot``) and the message every open socket gets (``update``; ``None`` for a state no
    update caused: sockets then get the snapshot)."""

    top_body: bytes
    snapshot: str
    update: str | None


@dataclass(frozen=True, slots=True)
class EncodedBoard:
    """Everything a process serves about one board state, encoded once.

    ``seed`` is the seed's shapes (``GET /api/scores/top10``, ``/ws/scoreboard``): exactly the
    messages of the one-board service, so its clients keep working. ``board`` is the per-board
    shapes (``/api/boards/{board}/top10``, ``/ws/boards/{board}``): the same plus ``board`` and
    ``period``. A new period's ``PERIOD_STARTED`` is the same message on both channels.
    """

    event: BoardChanged
    seed: Encoding
    board: Encoding

    # The seed's encoding under its old names, for the hot paths and the seed channel.
    @property
    def top_body(self) -> bytes:
        return self.seed.top_body

    @property
    def snapshot(self) -> str:
        return self.seed.snapshot

    @property
    def update(self) -> str | None:
        return self.seed.update

    @classmethod
    def build(cls, event: BoardChanged, *, initial: bool = False) -> EncodedBoard:
        rankings = rankings_json(event.rankings)
        where = {"board": event.board, "period": event.period}
        started = None
        if event.previous is not None:
            started = orjson.dumps(
                {
                    "type": "PERIOD_STARTED",
                    "data": {
                        **where,
                        "previous": event.previous,
                        "rankings": rankings,
                        "seq": event.seq,
                    },
                }
            ).decode()
        encodings = []
        for extra in ({}, where):
            snapshot = orjson.dumps(
                {"type": "SNAPSHOT", "data": {**extra, "rankings": rankings, "seq": event.seq}}
            ).decode()
            update = started
            if update is None and not initial:
                update = orjson.dumps(
                    {
                        "type": "SCORE_UPDATE",
                        "data": {
                            **extra,
                            "user_id": event.user_id,
                            "new_score": event.new_score,
                            "rankings": rankings,
                            "seq": event.seq,
                        },
                    }
                ).decode()
            top_body = orjson.dumps({**extra, "scores": rankings})
            encodings.append(Encoding(top_body, snapshot, update))
        return cls(event=event, seed=encodings[0], board=encodings[1])
