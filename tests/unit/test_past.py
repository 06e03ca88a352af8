"""What a read from a checkpoint settles (``past.from_checkpoint`` and ``PastBoard``), on
hand-made replays: rows merged with the events after them, users without a row waiting with a
lower bound of their key, recounted users, the audit actions that stop a checkpoint, and how
far the ranks are proven. The stores' side (and the whole against the recount) is
``tests/contract/test_checkpoints.py``."""

from __future__ import annotations

from datetime import UTC, datetime

from scoreboard.boards import Board
from scoreboard.consistency import Tally
from scoreboard.model import AuditEntry, CheckpointRow, LedgerEvent, Replay
from scoreboard.past import PastBoard, from_checkpoint
from scoreboard.periods import ALL_TIME

AT = datetime(2026, 12, 1, tzinfo=UTC)
SUM = Board("main", "All time")
BEST = Board("best", "Best", aggregate="best")


def row(user: str, score: int, reached: int, hidden: int = 0) -> CheckpointRow:
    return CheckpointRow(user, score, -score, reached, hidden)


def event(i: int, user: str, delta: int, *, voided: bool = False) -> LedgerEvent:
    return LedgerEvent(i, user, delta, "user", voided, True, AT)


def replay(
    rows: list[CheckpointRow],
    after: list[LedgerEvent],
    *,
    bound: tuple[int, int, str] | None,
    recounted: frozenset[str] = frozenset(),
    own: tuple[LedgerEvent, ...] = (),
    audit: tuple[AuditEntry, ...] = (),
) -> Replay:
    return Replay(AT, 100, bound, tuple(rows), tuple(after), recounted, own, audit)


def entry(action: str, target: str) -> AuditEntry:
    return AuditEntry(1, AT, "ops", action, target, "because", {})


def test_rows_take_the_events_after_them() -> None:
    rows = [row("ann", 50, 10), row("bob", 40, 11)]
    found = from_checkpoint(SUM, replay(rows, [event(101, "bob", 20)], bound=(-40, 11, "bob")))
    assert found is not None
    tallies, pending = found
    assert tallies == {"ann": Tally(50, 10, True), "bob": Tally(60, 101, True)}
    assert pending == {}


def test_a_user_without_a_row_waits_with_a_lower_bound() -> None:
    """Below the bound (40) at the checkpoint, or nowhere: +30 since makes at least 70 (a sum's
    key -40 - 30), or 30 alone. On a best board, the better of the bound and their own."""
    rows = [row("ann", 50, 10), row("bob", 40, 11)]
    after = [event(101, "cid", 20), event(102, "cid", 10), event(103, "dan", 5, voided=True)]
    found = from_checkpoint(SUM, replay(rows, after, bound=(-40, 11, "bob")))
    assert found is not None
    assert found[1] == {"cid": -70}  # dan's only later event is voided: still below the bound
    found = from_checkpoint(BEST, replay(rows, after, bound=(-40, 11, "bob")))
    assert found is not None
    assert found[1] == {"cid": -40}
    found = from_checkpoint(BEST, replay(rows, [event(104, "eve", 90)], bound=(-40, 11, "bob")))
    assert found is not None
    assert found[1] == {"eve": -90}


def test_with_every_user_in_the_checkpoint_the_later_events_are_all() -> None:
    found = from_checkpoint(SUM, replay([row("ann", 50, 10)], [event(101, "cid", 20)], bound=None))
    assert found is not None
    assert found == ({"ann": Tally(50, 10, True), "cid": Tally(20, 101, True)}, {})


def test_recounted_users_come_from_their_own_events_only() -> None:
    """ann's row counted an event voided since: she is recounted from what counts now."""
    rows = [row("ann", 50, 10), row("bob", 40, 11)]
    own = (event(10, "ann", 50, voided=True), event(7, "ann", 5))
    found = from_checkpoint(
        SUM,
        replay(
            rows,
            [event(101, "ann", 1)],
            bound=None,
            recounted=frozenset({"ann"}),
            own=tuple(sorted(own)),
            audit=(entry("void", "event:10"),),
        ),
    )
    assert found is not None
    assert found[0]["ann"] == Tally(5, 7, True)


def test_an_unknown_audit_action_or_a_repair_stops_the_checkpoint() -> None:
    rows = [row("ann", 50, 10)]
    for action in ("repair", "something_new"):
        assert (
            from_checkpoint(SUM, replay(rows, [], bound=None, audit=(entry(action, "x"),))) is None
        )
    for action in ("rename", "erase", "webhook_create", "hide"):
        assert from_checkpoint(SUM, replay(rows, [], bound=None, audit=(entry(action, "x"),)))


def test_ranks_are_proven_up_to_the_bound_and_the_lowest_pending() -> None:
    tallies = {
        "ann": Tally(90, 1, True),
        "bob": Tally(80, 2, True),
        "cid": Tally(70, 3, True),
        "dan": Tally(10, 4, True),  # below the bound: not proven
    }
    past = PastBoard(AT, ALL_TIME, dict(tallies), "desc", (-60, 9, "zed"), {})
    assert past.proven() == 3
    assert (past.rank("cid"), past.rank("dan")) == (3, None)
    waiting = PastBoard(AT, ALL_TIME, dict(tallies), "desc", (-60, 9, "zed"), {"eve": -75})
    assert waiting.proven() == 2  # eve may be ahead of cid
    assert (waiting.rank("bob"), waiting.rank("cid")) == (2, None)
    assert not waiting.complete
    assert PastBoard(AT, ALL_TIME, dict(tallies), "desc").proven() == 4
