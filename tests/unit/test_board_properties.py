"""Property: for any sequence of updates, every read of the board agrees with a simple model.

The model is the ranking rule applied by brute force: sort all users by (score desc, the moment
they reached that score asc). Pages, ranks, around-me and the top 10 must all be slices of it.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from scoreboard.model import ScoreUpdate
from tests.support.core import started_service

updates = st.lists(
    st.tuples(st.sampled_from([f"u{i}" for i in range(25)]), st.integers(1, 5)),
    min_size=1,
    max_size=120,
)


def model(sequence: list[tuple[str, int]]) -> list[tuple[str, int]]:
    score: dict[str, int] = {}
    reached: dict[str, int] = {}
    for step, (user, delta) in enumerate(sequence):
        score[user] = score.get(user, 0) + delta
        reached[user] = step
    return sorted(score.items(), key=lambda item: (-item[1], reached[item[0]]))


async def check(sequence: list[tuple[str, int]], page_size: int, radius: int) -> None:
    service = await started_service()
    for user, delta in sequence:
        await service.update(ScoreUpdate(user, delta))
    expected = model(sequence)

    top = [(e.user_id, e.score) for e in service.current_board().event.rankings]
    assert top == expected[:10]

    seen: list[tuple[str, int]] = []
    offset = 0
    while True:
        _, entries, total = await service.page("main", None, offset, page_size)
        assert total == len(expected)
        assert [e.rank for e in entries] == list(range(offset + 1, offset + 1 + len(entries)))
        seen += [(e.user_id, e.score) for e in entries]
        if len(entries) < page_size:
            break
        offset += page_size
    assert seen == expected  # no user twice, none skipped, in order

    for position, (user, score) in enumerate(expected):
        _, entry, rank = await service.user("main", None, user)
        assert (rank, entry.standing.score) == (position + 1, score)
        _, around_rank, around = await service.around("main", None, user, radius)
        assert around_rank == rank
        low = max(0, position - radius)
        assert [(e.user_id, e.score) for e in around] == expected[low : position + radius + 1]


@settings(max_examples=60, deadline=None)
@given(updates, st.integers(1, 7), st.integers(1, 4))
def test_pages_ranks_around_and_top10_agree_with_the_model(
    sequence: list[tuple[str, int]], page_size: int, radius: int
) -> None:
    asyncio.run(check(sequence, page_size, radius))
