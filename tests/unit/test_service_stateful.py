"""A Hypothesis state machine drives the service (over the in-memory adapters) with updates,
retries, conflicting reuses of an action id, out-of-range deltas and score grants redeemed
through ``authorize`` (some of them several times), and after every step compares it with a
model a few lines long:

- every user's total is the sum of the deltas that were accepted for them;
- an action id (and so a grant, whose ``act`` is its action id) is applied at most once: the
  store holds exactly one event per accepted update;
- the top 10, any page of the board and every user's rank follow the ranking rule (higher score
  first, equal scores by who reached theirs first);
- the live board's ``seq`` rises by exactly one when the top 10 changed, and not otherwise.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from scoreboard import applying
from scoreboard.adapters.memory_bus import MemoryBus
from scoreboard.adapters.memory_index import MemoryRankIndex
from scoreboard.adapters.memory_store import MemoryScoreStore
from scoreboard.auth.decision import authorize
from scoreboard.auth.mint import mint
from scoreboard.auth.verify import Grant, TokenVerifier
from scoreboard.boards import BoardsConfig
from scoreboard.errors import ActionConflict, InvalidRequest, Unauthorized
from scoreboard.model import ScoreUpdate
from scoreboard.service import ScoreService
from tests.support.core import on_main
from tests.support.server import SECRET

T = TypeVar("T")
KEY = SECRET.encode()
MIN_DELTA, MAX_DELTA = -50, 100

users = st.sampled_from([f"u{i}" for i in range(14)])  # more than 10: some fall off the top
actions = st.sampled_from([f"a{i}" for i in range(6)]) | st.none()
deltas = st.integers(MIN_DELTA, MAX_DELTA).filter(bool)
bad_deltas = st.sampled_from([0, MIN_DELTA - 1, MAX_DELTA + 1, 10**6])


class ServiceMachine(RuleBasedStateMachine):
    grants = Bundle("grants")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store = MemoryScoreStore()
        self.service = ScoreService(
            self.store, MemoryBus(), lambda board, live: MemoryRankIndex(order=board.order)
        )
        self.verifier = TokenVerifier(KEY)
        # the model
        self.totals: dict[str, int] = {}
        self.reached: dict[str, int] = {}
        self.used: dict[tuple[str, str], int] = {}
        self.accepted = 0
        self.top_before: list[tuple[str, int]] = []
        self.seq_before = 0

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.loop.close()

    @initialize()
    def start(self) -> None:
        config = BoardsConfig.default(MIN_DELTA, MAX_DELTA, None)
        self.run(self.service.start(self.run(applying.settle(self.store, config, may_change=True))))

    # -- the model's rule --------------------------------------------------------------------

    def ranking(self) -> list[tuple[str, int]]:
        order = sorted(self.totals, key=lambda u: (-self.totals[u], self.reached[u], u))
        return [(u, self.totals[u]) for u in order]

    def expect(self, update: ScoreUpdate) -> str:
        """What the model says happens: ``applied``, ``replayed``, ``conflict`` or ``invalid``."""
        if not MIN_DELTA <= update.delta <= MAX_DELTA or update.delta == 0:
            return "invalid"
        if update.action_id is not None:
            previous = self.used.get((update.user_id, update.action_id))
            if previous is not None:
                return "replayed" if previous == update.delta else "conflict"
        return "applied"

    def record(self, update: ScoreUpdate) -> None:
        self.accepted += 1
        self.totals[update.user_id] = self.totals.get(update.user_id, 0) + update.delta
        self.reached[update.user_id] = self.accepted
        if update.action_id is not None:
            self.used[(update.user_id, update.action_id)] = update.delta

    def submit(self, update: ScoreUpdate, authorized: ScoreUpdate | None = None) -> None:
        """Send ``update`` (or what ``authorize`` made of it) and check the outcome."""
        applied = authorized or update
        outcome = self.expect(applied)
        self.top_before = self.ranking()[:10]
        self.seq_before = self.service.current_board().event.seq
        try:
            result = self.run(self.service.update(applied))
        except InvalidRequest:
            assert outcome == "invalid"
            return
        except ActionConflict:
            assert outcome == "conflict"
            return
        assert outcome in ("applied", "replayed"), outcome
        if outcome == "applied":
            self.record(applied)
        score, rank = on_main(result)
        assert score == self.totals[applied.user_id]
        assert rank == [u for u, _ in self.ranking()].index(applied.user_id) + 1

    # -- rules -------------------------------------------------------------------------------

    @rule(user=users, delta=deltas, action=actions)
    def update(self, user: str, delta: int, action: str | None) -> None:
        self.submit(ScoreUpdate(user, delta, action))

    @precondition(lambda self: bool(self.used))
    @rule(data=st.data())
    def retry_or_reuse(self, data: st.DataObject) -> None:
        """An action id seen before, with its own delta (a retry) or another (a conflict)."""
        (user, action), delta = data.draw(st.sampled_from(sorted(self.used.items())))
        delta = data.draw(st.sampled_from([delta, delta + 1 if delta < MAX_DELTA else delta - 1]))
        self.submit(ScoreUpdate(user, delta, action))

    @rule(user=users, delta=bad_deltas, action=actions)
    def out_of_range(self, user: str, delta: int, action: str | None) -> None:
        self.submit(ScoreUpdate(user, delta, action))

    @rule(target=grants, user=users, delta=deltas, act=st.sampled_from(["g0", "g1", "g2", "a0"]))
    def issue_grant(self, user: str, delta: int, act: str) -> Any:
        value = mint(KEY, user, ttl=600, grant=Grant(delta, act))
        return (value, user, delta, act)

    @rule(grant=grants, with_action=st.booleans())
    def redeem(self, grant: tuple[str, str, int, str], with_action: bool) -> None:
        """A grant may be redeemed any number of times; only its first use adds."""
        value, user, delta, act = grant
        update = ScoreUpdate(user, delta, act if with_action else None)
        authorized = self.run(authorize(self.verifier, "grant", value, update))
        assert authorized.action_id == act
        self.submit(update, authorized)

    @rule(grant=consumes(grants), other=users, shift=st.integers(1, 5))
    def redeem_mismatched(self, grant: tuple[str, str, int, str], other: str, shift: int) -> None:
        """A grant presented for another user or another delta is refused before any write."""
        value, user, delta, _ = grant
        for update in (ScoreUpdate(other, delta), ScoreUpdate(user, delta + shift)):
            if update.user_id == user and update.delta == delta:
                continue
            count = self.store.event_count
            try:
                self.run(authorize(self.verifier, "grant", value, update))
            except Unauthorized:
                pass
            else:
                raise AssertionError("a mismatching grant was authorized")
            assert self.store.event_count == count

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def totals_are_the_sum_of_accepted_deltas(self) -> None:
        for user, total in self.totals.items():
            stored = self.run(self.store.entry("main", "all", user))
            assert stored is not None
            assert stored.standing.score == total

    @invariant()
    def each_accepted_update_is_one_event(self) -> None:
        assert self.store.event_count == self.accepted

    @invariant()
    def the_board_matches_the_model(self) -> None:
        ranking = self.ranking()
        top = [(e.user_id, e.score) for e in self.service.current_board().event.rankings]
        assert top == ranking[:10]
        for offset, limit in ((0, 100), (3, 4), (9, 2), (12, 5)):
            _, page, size = self.run(self.service.page("main", None, offset, limit))
            assert size == len(ranking)
            assert [(e.user_id, e.score) for e in page] == ranking[offset : offset + limit]
            assert [e.rank for e in page] == list(range(offset + 1, offset + 1 + len(page)))
        for rank, (user, _) in enumerate(ranking, start=1):
            assert self.run(self.service.served("main").index.rank(user)) == rank

    @invariant()
    def seq_rises_exactly_when_the_top_10_changes(self) -> None:
        seq = self.service.current_board().event.seq
        changed = self.ranking()[:10] != self.top_before
        assert seq == self.seq_before + (1 if changed else 0)
        self.top_before = self.ranking()[:10]
        self.seq_before = seq


ServiceMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestServiceStateful = ServiceMachine.TestCase
