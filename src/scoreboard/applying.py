"""Which board configuration a process serves: the one stored in the database, which every
process of a deployment must share.

- Nothing stored yet (a new database, or one upgraded from the one-board release): the
  process's configuration is stored, and each of its boards filled from the stored events of
  its current period.
- The same stored: nothing to do.
- Another stored: a change that would reinterpret a board's history (its metric, aggregate,
  order, reset or time zone, while it has data) is refused in every mode: a new board id is the
  way. Otherwise an embedded ``serve`` applies its file (new boards filled from the stored
  events); a scaled one refuses to start, since the other processes serve what is stored:
  ``scoreboard boards apply FILE`` changes it for all of them.
"""

from __future__ import annotations

from scoreboard.boards import BoardsConfig, differences
from scoreboard.errors import ConfigChanged
from scoreboard.ports import ScoreStore


class ConfigurationRefused(Exception):
    """The configuration cannot be served; the message is one line saying why and what to do."""


async def settle(store: ScoreStore, wanted: BoardsConfig, *, may_change: bool) -> BoardsConfig:
    """The configuration to serve, applied to ``store`` when it should be (see the module
    docstring). ``ConfigurationRefused`` otherwise. Processes starting at once on a new
    database race to store theirs: the losers compare again with what the winner stored."""
    for _ in range(_ATTEMPTS - 1):
        try:
            return await _settle(store, wanted, may_change=may_change)
        except ConfigChanged:
            continue
    return await _settle(store, wanted, may_change=may_change)


_ATTEMPTS = 3


async def _settle(store: ScoreStore, wanted: BoardsConfig, *, may_change: bool) -> BoardsConfig:
    stored, version = await store.load_config()
    if stored is not None and stored.to_json() == wanted.to_json():
        return stored
    if stored is None:
        # The first configuration: fill the boards that have nothing yet. One that has data
        # came from the upgrade of the one-board release (main, all) and is exactly its events
        # already; refilling it would only raise its versions.
        fill = [board for board in wanted.boards if not await store.has_data(board)]
        await store.apply_config(wanted, expected_version=version, fill=fill)
        return wanted
    await refuse_reinterpretations(store, stored, wanted)
    if not may_change:
        raise ConfigurationRefused(
            "the boards configuration differs from the one the other processes serve (stored "
            "in the database); apply it to all of them with: scoreboard boards apply FILE"
        )
    await apply(store, wanted)
    return wanted


async def apply(store: ScoreStore, wanted: BoardsConfig) -> int:
    """Apply ``wanted`` over whatever is stored (``scoreboard boards apply``): boards it adds
    are filled from the stored events of their current period. The new version."""
    stored, version = await store.load_config()
    if stored is not None:
        await refuse_reinterpretations(store, stored, wanted)
    known = set(stored.boards) if stored is not None else set()
    fill = [board for board in wanted.boards if board not in known]
    return await store.apply_config(wanted, expected_version=version, fill=fill)


async def refuse_reinterpretations(
    store: ScoreStore, stored: BoardsConfig, wanted: BoardsConfig
) -> None:
    for difference in differences(stored, wanted):
        if difference.reinterprets and await store.has_data(difference.name):
            raise ConfigurationRefused(difference.describe())
