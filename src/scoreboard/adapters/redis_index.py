"""Redis rank index (scaled mode): one sorted set per board, shared by every process.

**Ordering.** A sorted set orders by score, and equal scores by member, byte by byte. Each user is
stored with score ``-total`` and member ``"%019d" % reached + user_id``, and the board is read in
*ascending* order (``ZRANGE``, ``ZRANK``). Ascending ``-total`` is descending total; for equal
totals the fixed-width, zero-padded ``reached`` compares as text exactly as it does as a number,
so who reached the score first comes first, and the user id settles the (never expected) case of
equal ``reached``. That is :func:`scoreboard.model.rank_key` exactly. We chose this over a
composite score (``total * 2**k + reached``) because a double holds only 53 bits: totals and event
ids would have to share them. Here the total alone must fit, so totals are exact up to
``2**53`` (about 9e15) in magnitude. Because the member changes with ``reached``, a hash maps each
user to their current member; two more hashes hold each user's version and username.

**One round trip per write.** :meth:`RedisRankIndex.apply_and_rank` is one Lua script: drop
the write if the stored version is as new or newer; move the member; read the user's rank; if the
user was or now is in the top k, rebuild the top, compare it with the stored encoding of the last
top, and only if it differs ``INCR`` the board's ``seq`` and return the new top with usernames.
Redis runs a script atomically, so whichever process wrote, a higher ``seq`` always carries a
newer top, and the rank is the one right after this write.

**Derived data only.** Everything here is rebuilt from the store (``load``). A marker key is set
by ``load`` and by ``clear``; a write that finds it missing (``FLUSHDB``, a Redis restart without
persistence, an evicted key) still stores its own total but reports no board change, because the
top of a half-empty index is wrong, and flags the index as lost. So does a write that fails on the
connection (the store has committed it, the index missed it). :meth:`wait_lost` wakes the
keeper (``scoreboard.keeper``), which then reloads every total from the store while the service
keeps serving, and announces the rebuilt board.

**seq after a flush.** The counter goes with the data. Every process's live board drops events
whose ``seq`` is not above the one it holds, so a counter restarted at 1 would silence them for as
many changes as they had seen. Each script call therefore carries a *floor*: the highest ``seq``
this process has seen (its live board's, which follows the bus, so it knows the other processes'
events too). The script raises the counter to the floor before using it; the periodic
:meth:`check` does the same for idle processes. After a flush the counter is back above what the
rebuilding process has shown (and, through the bus, what the others have) before the rebuilt board
is announced, with no new "epoch" concept on the wire. (A process that missed the last events on
the bus raises it on its next check; until then its clients may miss one announcement, and the
next change reaches them.)

**Periods.** The index holds one board's current period (and keeps the previous one for a
while). Each period's data has keys of its own, ``{prefix}{<board>}:<period>:z`` and so on; the
board's ``seq`` and the id of its current period are one key each. Every script names the
period it means: a write for a period that is not the current one stores nothing (the store has
it; it is an archive, or a period this index has not started), and :meth:`start_period` makes a
period current with the next ``seq``, once, whichever process asks first; the start (its
``seq`` and top) is kept with the period's keys, and every process that asks later gets that
same start, so that all of them announce the period with one ``seq``. The previous period's
keys expire after ``KEEP_PREVIOUS`` seconds.

Key prefix: ``{prefix}{<board>}:...``; the braces keep one board's keys in one cluster slot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from scoreboard.errors import Unavailable
from scoreboard.model import (
    DEFAULT_BOARD,
    TOP_K,
    Placement,
    RankedEntry,
    Standing,
    Top,
    rank_score,
)

log = logging.getLogger(__name__)

MAX_EXACT_SCORE = 2**53
_REACHED_WIDTH = 19  # digits of the largest BIGINT
_LOAD_BATCH = 1_000
# RuntimeError: a command sent on a connection whose transport the peer just reset can fail
# with uvloop's "unable to perform operation on <TCPTransport closed=True>" before redis-py
# notices; seen in tests/faults when Redis dies under load. Inside a Redis call it means only
# that.
_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError, RuntimeError)

KEEP_PREVIOUS = 2 * 24 * 3600

# KEYS: z members versions names top built started (of one period), seq, current (of the board);
# ARGV[1] the seq floor, ARGV[2] k, ARGV[3] the period the call is about.
# Every script starts with this: raise seq to the floor, and the helpers.
_PRELUDE = f"""
local K = tonumber(ARGV[2])
local WIDTH = {_REACHED_WIDTH}
"""
_PRELUDE += """
local z, members, versions, names = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local topkey, built, startedkey = KEYS[5], KEYS[6], KEYS[7]
local seqkey, currentkey = KEYS[8], KEYS[9]
local period = ARGV[3]
local current = redis.call('GET', currentkey)
local floor = tonumber(ARGV[1])
local seq = tonumber(redis.call('GET', seqkey) or '0')
if seq < floor then
  seq = floor
  redis.call('SET', seqkey, seq)
end
local function put(user, version, negscore, member, name)
  local old = redis.call('HGET', versions, user)
  if old and tonumber(old) >= tonumber(version) then return false end
  local oldmember = redis.call('HGET', members, user)
  local touched = false
  local before = false
  if oldmember then
    local r = redis.call('ZRANK', z, oldmember)
    if r then
      before = r
      if r < K then touched = true end
    end
    redis.call('ZREM', z, oldmember)
  end
  redis.call('ZADD', z, negscore, member)
  redis.call('HSET', members, user, member)
  redis.call('HSET', versions, user, version)
  redis.call('HSET', names, user, name)
  return true, touched, before
end
local function topof(start, count)
  local out = {}
  if count <= 0 then return out end
  local rows = redis.call('ZRANGE', z, start, start + count - 1, 'WITHSCORES')
  for i = 1, #rows, 2 do
    local user = string.sub(rows[i], WIDTH + 1)
    out[#out + 1] = user
    out[#out + 1] = redis.call('HGET', names, user) or user
    out[#out + 1] = rows[i + 1]
  end
  return out
end
-- If the top differs from the stored one, store it, advance seq and return the new seq.
local function settle()
  local top = topof(0, K)
  local encoded = cjson.encode(top)
  if encoded == redis.call('GET', topkey) then return 0, top end
  redis.call('SET', topkey, encoded)
  seq = seq + 1
  redis.call('SET', seqkey, seq)
  return seq, top
end
"""

# ARGV: floor k period user version rankscore member name
#   -> {seq or 0, lost (1) or another period (2), 0-based rank, stored (1/0),
#       0-based rank before, top...}
_APPLY = (
    _PRELUDE
    + """
local lost = redis.call('EXISTS', built) == 0 and 1 or 0
if not current then
  -- Flushed (or never started): the writer's period is the current one; it is lost, rebuilt.
  redis.call('SET', currentkey, period)
  current = period
end
if current ~= period then return {0, 2, false, 0, false} end
local user = ARGV[4]
local stored, touched, before = put(user, ARGV[5], ARGV[6], ARGV[7], ARGV[8])
local member = redis.call('HGET', members, user)
local rank = false
if member then rank = redis.call('ZRANK', z, member) end
if not stored then return {0, lost, rank, 0, false} end
if lost == 1 then return {0, lost, rank, 1, before} end
if not touched and rank >= K then return {0, 0, rank, 1, before} end
local newseq, top = settle()
if newseq == 0 then return {0, 0, rank, 1, before} end
local out = {newseq, 0, rank, 1, before}
for i = 1, #top do out[#out + 1] = top[i] end
return out
"""
)

# ARGV: floor k period settle(0/1) then (user version rankscore member name)* -> {seq or 0}
# Loading a period makes it the current one.
_LOAD = (
    _PRELUDE
    + """
if current ~= period then redis.call('SET', currentkey, period) end
for i = 5, #ARGV, 5 do
  put(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
end
if ARGV[4] == '0' then return {0} end
redis.call('SET', built, '1')
local newseq = settle()
return {newseq}
"""
)

# ARGV: floor k period start count -> {seq, built, current period, top...}. Also raises seq to
# the floor (check()).
_READ = (
    _PRELUDE
    + """
local out = {seq, redis.call('EXISTS', built), current or ''}
local rows = topof(tonumber(ARGV[4]), tonumber(ARGV[5]))
for i = 1, #rows do out[#out + 1] = rows[i] end
return out
"""
)

# ARGV: floor k period user -> 0-based rank or false
_RANK = (
    _PRELUDE
    + """
local member = redis.call('HGET', members, ARGV[4])
if not member then return false end
return redis.call('ZRANK', z, member)
"""
)

# ARGV: floor k period -> {seq, started (1) or already current (0), top...}: ``period``
# becomes the current one, empty and built, with the next seq; once, whoever asks first. Later
# askers get that start again (its seq and top), or, for a period made current otherwise (a
# load), the board as it is.
_START = (
    _PRELUDE
    + """
if current == period then
  local start = redis.call('GET', startedkey)
  if start then
    local out = cjson.decode(start)
    out[2] = 0
    return out
  end
  local out = {seq, 0}
  local top = topof(0, K)
  for i = 1, #top do out[#out + 1] = top[i] end
  return out
end
redis.call('SET', currentkey, period)
redis.call('SET', built, '1')
redis.call('DEL', topkey)
local newseq, top = settle()
local out = {newseq, 1}
for i = 1, #top do out[#out + 1] = top[i] end
redis.call('SET', startedkey, cjson.encode(out))
return out
"""
)

# ARGV: floor k period -> {seq}. Empties the board (keeps seq) and marks it as intentionally built.
_CLEAR = (
    _PRELUDE
    + """
redis.call('DEL', z, members, versions, names)
redis.call('SET', built, '1')
local newseq = settle()
return {newseq}
"""
)


# ARGV: floor k period user version -> {seq or 0, lost (1) or another period (2), top...}. The
# user leaves the board as of ``version``; the versions hash keeps it, so that a late write of an
# older standing is dropped like any stale write.
_REMOVE = (
    _PRELUDE
    + """
local lost = redis.call('EXISTS', built) == 0 and 1 or 0
if not current then
  redis.call('SET', currentkey, period)
  current = period
end
if current ~= period then return {0, 2} end
local user = ARGV[4]
local old = redis.call('HGET', versions, user)
if old and tonumber(old) >= tonumber(ARGV[5]) then return {0, lost} end
redis.call('HSET', versions, user, ARGV[5])
local member = redis.call('HGET', members, user)
if not member then return {0, lost} end
local r = redis.call('ZRANK', z, member)
redis.call('ZREM', z, member)
redis.call('HDEL', members, user)
redis.call('HDEL', names, user)
if lost == 1 or not r or r >= K then return {0, lost} end
local newseq, top = settle()
local out = {newseq, 0}
for i = 1, #top do out[#out + 1] = top[i] end
return out
"""
)

# ARGV: floor k period user -> {seq or 0, top...}. Every trace of the user in one period's keys
# goes (an erasure): no version is kept. The current period's top settles as usual; another
# period's stored top is rewritten without them (it is a cached board too).
_FORGET = (
    _PRELUDE
    + """
local user = ARGV[4]
local member = redis.call('HGET', members, user)
local r = false
if member then
  r = redis.call('ZRANK', z, member)
  redis.call('ZREM', z, member)
end
redis.call('HDEL', members, user)
redis.call('HDEL', versions, user)
redis.call('HDEL', names, user)
if current ~= period then
  if redis.call('EXISTS', topkey) == 1 then
    redis.call('SET', topkey, cjson.encode(topof(0, K)), 'KEEPTTL')
  end
  return {0}
end
if not r or r >= K or redis.call('EXISTS', built) == 0 then return {0} end
local newseq, top = settle()
local out = {newseq}
for i = 1, #top do out[#out + 1] = top[i] end
return out
"""
)


def member_of(standing: Standing) -> str:
    """The sorted-set member of a standing: fixed-width ``reached``, then the user id."""
    return f"{standing.reached:0{_REACHED_WIDTH}d}{standing.user_id}"


def _number(raw: Any) -> int:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        return int(text)
    except ValueError:
        return int(float(text))


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern (the key prefix holds ``{`` and may hold
    ``*``, ``?``, ``[``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _entries(flat: Sequence[Any], first_rank: int, order: str) -> tuple[RankedEntry, ...]:
    sign = -1 if order == "desc" else 1  # the sorted set holds the rank score
    return tuple(
        RankedEntry(
            first_rank + i // 3, _text(flat[i]), _text(flat[i + 1]), sign * _number(flat[i + 2])
        )
        for i in range(0, len(flat), 3)
    )


_SUFFIXES = ("z", "members", "versions", "names", "top", "built", "started")


class RedisRankIndex:
    """A :class:`scoreboard.ports.SharedIndex` on a Redis sorted set per period (see the module
    docstring).

    ``seq_floor`` returns the highest ``seq`` this process has seen of the board (the
    composition root passes the live board's); ``prefix`` namespaces every key, so several
    deployments or test runs can share one Redis. Connection failures raise
    :class:`~scoreboard.errors.Unavailable`.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "scoreboard:",
        board: str = DEFAULT_BOARD,
        order: str = "desc",
        top_k: int = TOP_K,
        seq_floor: Callable[[], int] | None = None,
        period: str = "all",
    ) -> None:
        self.client = client
        self.top_k = top_k
        self.board_id = board
        self.order = order
        self._base = f"{prefix}{{{board}}}:"
        self.period = period
        """The period this process takes as current (reads use its keys)."""
        self.seq_floor = seq_floor or (lambda: 0)
        self._seen = 0
        self._lost = asyncio.Event()
        self._apply = client.register_script(_APPLY)
        self._load = client.register_script(_LOAD)
        self._read = client.register_script(_READ)
        self._rank = client.register_script(_RANK)
        self._start = client.register_script(_START)
        self._clear = client.register_script(_CLEAR)
        self._remove = client.register_script(_REMOVE)
        self._forget = client.register_script(_FORGET)

    def keys_of(self, period: str) -> list[str]:
        """The keys of one period's data, then the board's seq and current period."""
        keys = [f"{self._base}{period}:{suffix}" for suffix in _SUFFIXES]
        return [*keys, self._base + "seq", self._base + "current"]

    def _floor(self) -> int:
        return max(self._seen, self.seq_floor())

    def _saw(self, seq: int) -> None:
        if seq > self._seen:
            self._seen = seq

    async def _run(self, script: Any, period: str, args: Sequence[Any]) -> Any:
        try:
            return await script(
                keys=self.keys_of(period), args=[self._floor(), self.top_k, period, *args]
            )
        except _UNAVAILABLE as exc:
            self._lost.set()
            log.error("redis call failed: %s: %s", type(exc).__name__, exc)
            raise Unavailable("the rank index is unavailable, try again shortly") from exc

    def _args(self, standing: Standing) -> list[Any]:
        if abs(standing.score) > MAX_EXACT_SCORE:
            raise ValueError(
                f"score {standing.score} is beyond what a Redis sorted set holds exactly"
            )
        return [
            standing.user_id,
            standing.version,
            rank_score(standing.score, self.order),
            member_of(standing),
            standing.username,
        ]

    # -- writes -----------------------------------------------------------------------------

    async def apply(self, period: str, standing: Standing) -> Top | None:
        moved, _ = await self.apply_and_rank(period, standing)
        return moved

    async def apply_and_rank(
        self, period: str, standing: Standing
    ) -> tuple[Top | None, int | None]:
        top, _, rank, _ = await self.apply_and_move(period, standing)
        return top, rank

    async def apply_and_move(self, period: str, standing: Standing) -> Placement:
        reply = await self._run(self._apply, period, self._args(standing))
        seq, lost = int(reply[0]), int(reply[1])
        if lost == 2:
            return Placement(None, None, None, False)  # another period's: the store holds it
        stored = bool(int(reply[3]))
        if lost:
            log.warning("rank index found empty (flushed or restarted); rebuilding from the store")
            self._lost.set()
            # A rank in a half-built index means nothing.
            return Placement(None, None, None, stored)
        rank = None if reply[2] is None else int(reply[2]) + 1
        before = None if reply[4] is None else int(reply[4]) + 1
        if seq == 0:
            return Placement(None, before, rank, stored)
        self._saw(seq)
        return Placement(Top(seq, _entries(reply[5:], 1, self.order), period), before, rank, stored)

    async def remove(self, period: str, user_id: str, version: int) -> Top | None:
        reply = await self._run(self._remove, period, [user_id, version])
        seq, lost = int(reply[0]), int(reply[1])
        if lost == 1:
            self._lost.set()
        if seq == 0:
            return None
        self._saw(seq)
        return Top(seq, _entries(reply[2:], 1, self.order), period)

    async def forget(self, user_id: str) -> Top | None:
        """In every period of the board that still has keys (the current one, and the previous
        ones until they expire)."""
        pattern = f"{_glob_escape(self._base)}*:members"
        try:
            found = {_text(key) async for key in self.client.scan_iter(match=pattern, count=1000)}
        except _UNAVAILABLE as exc:
            raise Unavailable("the rank index is unavailable, try again shortly") from exc
        periods = {key[len(self._base) : -len(":members")] for key in found}
        top = None
        for period in sorted(periods | {self.period}):
            reply = await self._run(self._forget, period, [user_id])
            if int(reply[0]):
                self._saw(int(reply[0]))
                top = Top(int(reply[0]), _entries(reply[1:], 1, self.order), period)
        return top

    async def start_period(self, period: str) -> Top:
        previous = self.period
        reply = await self._run(self._start, period, [])
        seq = int(reply[0])
        self._saw(seq)
        self.period = period
        if previous != period:
            # The previous period's data stays a while (a late read), then goes.
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for key in self.keys_of(previous)[: len(_SUFFIXES)]:
                        pipe.expire(key, KEEP_PREVIOUS)
                    await pipe.execute()
            except _UNAVAILABLE as exc:
                log.warning("old period keys not set to expire: %s", exc)
        return Top(seq, _entries(reply[2:], 1, self.order), period)

    async def load(self, period: str, standings: Iterable[Standing]) -> None:
        self.period = period
        batch: list[Any] = []
        for standing in standings:  # several scripts, so Redis is never blocked long
            batch.extend(self._args(standing))
            if len(batch) >= _LOAD_BATCH * 5:
                await self._run(self._load, period, [0, *batch])
                batch = []
        reply = await self._run(self._load, period, [1, *batch])
        self._saw(int(reply[0]))

    async def rebuild(self, period: str, chunks: AsyncIterator[list[Standing]]) -> Top:
        """Reload every standing of ``period`` (the store's ``iter_standings``) into an index
        that may be in use, then mark it built and settle the top once: no partial top is
        announced meanwhile, because writes keep reporting no change until the marker is back.
        Returns the top."""
        async for chunk in chunks:
            for start in range(0, len(chunk), _LOAD_BATCH):
                batch: list[Any] = [0]
                for standing in chunk[start : start + _LOAD_BATCH]:
                    batch.extend(self._args(standing))
                await self._run(self._load, period, batch)
        await self.load(period, ())
        return await self.board()

    async def clear(self) -> None:
        reply = await self._run(self._clear, self.period, [])
        self._saw(int(reply[0]))

    # -- reads ------------------------------------------------------------------------------

    async def _slice(
        self, start: int, count: int
    ) -> tuple[int, bool, str, tuple[RankedEntry, ...]]:
        reply = await self._run(self._read, self.period, [max(start, 0), max(count, 0)])
        seq = int(reply[0])
        self._saw(seq)
        return seq, bool(int(reply[1])), _text(reply[2]), _entries(reply[3:], start + 1, self.order)

    async def board(self) -> Top:
        seq, _, _, top = await self._slice(0, self.top_k)
        return Top(seq, top, self.period)

    async def top(self, k: int) -> tuple[RankedEntry, ...]:
        return (await self._slice(0, k))[3]

    async def page(self, offset: int, limit: int) -> tuple[RankedEntry, ...]:
        return (await self._slice(offset, limit))[3]

    async def rank(self, user_id: str) -> int | None:
        rank = await self._run(self._rank, self.period, [user_id])
        return None if rank is None else int(rank) + 1

    async def size(self) -> int:
        try:
            return int(await self.client.zcard(self.keys_of(self.period)[0]))
        except _UNAVAILABLE as exc:
            raise Unavailable("the rank index is unavailable, try again shortly") from exc

    # -- keeping the derived data whole -----------------------------------------------------

    async def check(self) -> bool:
        """Raise the shared ``seq`` to this process's floor; return whether the index is built
        (``False`` after a flush). Marks the index lost when it is not."""
        built = (await self._slice(0, 0))[1]
        if not built:
            self._lost.set()
        return built

    async def observe(self) -> tuple[bool, Top]:
        """One read of the shared state: whether the index is built (marks it lost when not,
        like :meth:`check`) and the current top with the shared ``seq``. A process whose
        live board has a lower ``seq`` missed bus messages (pub/sub is at most once)."""
        seq, built, _, top = await self._slice(0, self.top_k)
        if not built:
            self._lost.set()
        return built, Top(seq, top, self.period)

    async def wait_lost(self, within: float) -> bool:
        """Wait up to ``within`` seconds for the index to be found lost; ``True`` if it was.
        The flag is reset, so the caller owns the rebuild that follows."""
        if not self._lost.is_set():
            try:
                await asyncio.wait_for(self._lost.wait(), within)
            except TimeoutError:
                return False
        self._lost.clear()
        return True

    def mark_lost(self) -> None:
        """Ask for a rebuild (e.g. after one failed)."""
        self._lost.set()
