"""Redis points window (scaled mode): one window per key, shared by every process.

Per key, a sorted set holds the reservations still inside the window (member
``"<points>:<id>"``, score: the time reserved) and a hash holds the sum of their points
(field ``used``). Each reservation is **one Lua script, one round trip**: it drops what left
the window (subtracting its points), and grants the reservation only if the points held plus
its own stay within the limit, adding it in the same atomic step; so processes reserving at
once can never together go past the limit. Dropping is amortized O(log n) per reservation
(each is dropped once); only a refusal walks the set, to tell when enough will have left.
A refund is one script too: it removes exactly its member, and only if it is still the
reservation the ticket names (same member, same time).

A reservation with an ``action_id`` has the member ``"<points>:a:<action_id>"``, so the same
action asked for again (by any process) finds it and shares it: the hash counts the extra
holders under the member's name (no field while there is one holder), and the points go back
when the last holder refunds. Other members are ``"<points>:r:<random>"``.

**One clock.** The time is the Redis server's (``TIME`` inside the script), so reservations
made by processes on machines whose clocks disagree still share one timeline. A ``clock`` may be
given instead (tests place reservations at any instant with it); then every process must pass
the same one.

Both keys expire ``span`` after the key's newest reservation, when every reservation in them
has left the window: an idle key leaves nothing behind. Keys are ``{prefix}{<key>}`` and
``{prefix}{<key>}:used``; the braces keep a key's two keys in one cluster slot.

Any Redis error raises :class:`~scoreboard.errors.Unavailable`, and nothing is logged here: the
caller (``scoreboard.web.guards.limits``) decides to let updates through, and logs and counts that.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from scoreboard.errors import Unavailable
from scoreboard.model import PointsReservation, PointsTicket

# RuntimeError: uvloop's "unable to perform operation on <TCPTransport closed=True>" when Redis
# resets a connection under load (see redis_index).
_UNAVAILABLE = (RedisError, OSError, RuntimeError)

# KEYS: the sorted set, the hash. ARGV: points, limit, span, member, now ('' = the server's
# clock), shared (1: the member names an action, which a reservation of it may already hold).
# Returns {granted, used, reset (text), the time reserved (text) or ''}: floats as text, because
# Redis turns a Lua number into an integer reply.
_RESERVE = """
local z, h = KEYS[1], KEYS[2]
local points, limit, span = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local member = ARGV[4]
local now = tonumber(ARGV[5])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function points_of(m) return tonumber(string.match(m, '^%d+')) end
local start = now - span
local gone = redis.call('ZRANGEBYSCORE', z, '-inf', start)
if #gone > 0 then
  local freed = 0
  for i = 1, #gone do
    freed = freed + points_of(gone[i])
    redis.call('HDEL', h, gone[i])
  end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', start)
  redis.call('HINCRBY', h, 'used', -freed)
end
local used = tonumber(redis.call('HGET', h, 'used') or '0')
if ARGV[6] == '1' then
  local at = redis.call('ZSCORE', z, member)
  if at then
    redis.call('HINCRBY', h, member, 1)
    return {1, used, '0', at}
  end
end
if used + points > limit then
  local reset = span
  if points <= limit then
    local need, freed = used + points - limit, 0
    local rows = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
    for i = 1, #rows, 2 do
      freed = freed + points_of(rows[i])
      if freed >= need then
        reset = tonumber(rows[i + 1]) + span - now
        break
      end
    end
  end
  return {0, used, tostring(reset), ''}
end
redis.call('ZADD', z, now, member)
redis.call('HINCRBY', h, 'used', points)
local ttl = math.ceil(span * 1000)
redis.call('PEXPIRE', z, ttl)
redis.call('PEXPIRE', h, ttl)
return {1, used, '0', redis.call('ZSCORE', z, member)}
"""

# KEYS: the sorted set, the hash. ARGV: member, the time it was reserved.
_REFUND = """
local z, h = KEYS[1], KEYS[2]
local at = redis.call('ZSCORE', z, ARGV[1])
if not at or tonumber(at) ~= tonumber(ARGV[2]) then return 0 end
if tonumber(redis.call('HGET', h, ARGV[1]) or '0') > 0 then
  if redis.call('HINCRBY', h, ARGV[1], -1) == 0 then redis.call('HDEL', h, ARGV[1]) end
  return 1
end
redis.call('ZREM', z, ARGV[1])
redis.call('HINCRBY', h, 'used', -tonumber(string.match(ARGV[1], '^%d+')))
return 1
"""


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class RedisPointsWindow:
    """A :class:`scoreboard.ports.PointsWindow` in Redis (see the module docstring)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "scoreboard:points:",
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.prefix = prefix
        self.client = client
        self._clock = clock
        self._reserve = client.register_script(_RESERVE)
        self._refund = client.register_script(_REFUND)

    def _keys(self, key: str) -> list[str]:
        base = f"{self.prefix}{{{key}}}"
        return [base, base + ":used"]

    async def _run(self, script: Any, keys: list[str], args: Sequence[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except _UNAVAILABLE as exc:
            raise Unavailable(f"the points window is unavailable: {exc}") from exc

    async def reserve(
        self, key: str, points: int, *, limit: int, span: float, action_id: str | None = None
    ) -> PointsReservation:
        now = "" if self._clock is None else repr(self._clock())
        if action_id is None:
            member, shared = f"{points}:r:{os.urandom(8).hex()}", 0
        else:
            member, shared = f"{points}:a:{action_id}", 1
        reply = await self._run(
            self._reserve, self._keys(key), [points, limit, span, member, now, shared]
        )
        used = int(reply[1])
        if not int(reply[0]):
            return PointsReservation(False, used, float(_text(reply[2])))
        at = float(_text(reply[3]))
        return PointsReservation(True, used, 0.0, PointsTicket(key, member, at))

    async def refund(self, ticket: PointsTicket) -> None:
        await self._run(self._refund, self._keys(ticket.key), [ticket.member, repr(ticket.at)])

    async def forget(self, key: str) -> None:
        try:
            await self.client.delete(*self._keys(key))
        except _UNAVAILABLE as exc:
            raise Unavailable("the points window is unavailable") from exc
