"""``scoreboard demo``: realistic score updates against a running server, to watch the page move.

A fixed cast of players, each with an activity level (how often they play) and a skill (how much
an action is worth), so a few players climb steadily and the top of the board reshuffles now and
then instead of changing on every update. Tokens are minted with the server's own secret (the
same one ``scoreboard token`` uses), so the demo must run where the server's configuration is:
the same folder, or the same ``SCOREBOARD_JWT_SECRET``.

Each update is an event of one of the ``--metric`` metrics (default ``points``), chosen at random,
within that metric's range as the server's boards file declares it: points as actions worth a few
to a few hundred, any other metric (a lap time, say) as a measurement around each player's own
typical value. With ``examples/boards.toml`` (``make demo``) that moves all-time, weekly, daily,
season and fastest-lap boards at once.

The demo sends to the one URL it is given, one request at a time over a kept-alive connection,
at most ``--rate`` a second. If it falls behind it does not burst to catch up; it stops by
itself after ``--duration`` seconds, on Ctrl-C, or when the server refuses its tokens.
"""

from __future__ import annotations

import argparse
import http.client
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO
from urllib.parse import urlsplit

import orjson

from scoreboard.model import DEFAULT_METRIC

MAX_USERS = 1000
MAX_RATE = 1000.0
MAX_DURATION = 24 * 3600.0

_FIRST = (
    "Ada", "Alan", "Barbara", "Claude", "Dennis", "Edsger", "Frances", "Grace", "Guido",
    "Hedy", "Ivan", "Joan", "John", "Ken", "Linus", "Margaret", "Niklaus", "Radia", "Shafi",
    "Tim", "Whitfield", "Katherine", "Leslie", "Anita", "Donald", "Sophie", "Yukihiro",
)  # fmt: skip
_LAST = (
    "Lovelace", "Turing", "Liskov", "Shannon", "Ritchie", "Dijkstra", "Allen", "Hopper",
    "van Rossum", "Lamarr", "Sutherland", "Clarke", "McCarthy", "Thompson", "Torvalds",
    "Hamilton", "Wirth", "Perlman", "Goldwasser", "Berners-Lee", "Diffie", "Johnson",
    "Lamport", "Knuth", "Wilson", "Matsumoto",
)  # fmt: skip


class DemoError(Exception):
    """Something that ends the demo early, with a one-line reason for the user."""


@dataclass(frozen=True, slots=True)
class Player:
    user_id: str
    name: str
    activity: float
    """Relative chance of being the next to score."""
    skill: float
    """Multiplies the typical points of an action."""


def cast(count: int, rng: random.Random) -> list[Player]:
    """``count`` players with distinct ids (``demo-001``...) and plausible names."""
    players = []
    for i in range(1, count + 1):
        first = _FIRST[(i - 1) % len(_FIRST)]
        last = _LAST[(i * 7) % len(_LAST)]
        players.append(
            Player(
                user_id=f"demo-{i:03d}",
                name=f"{first} {last}",
                activity=rng.paretovariate(1.5),  # a few very active players, a long tail
                skill=rng.uniform(0.6, 1.6),
            )
        )
    return players


def points(player: Player, rng: random.Random, low: int, high: int) -> int:
    """Points for one action: mostly small, sometimes a big win, within ``[low, high]``."""
    base = rng.choice((5, 10, 10, 15, 20, 25, 50)) if rng.random() < 0.9 else rng.randint(100, 400)
    return max(low, min(high, max(1, round(base * player.skill))))


def measurement(player: Player, rng: random.Random, low: int, high: int) -> int:
    """A measured value (a lap time, a distance) within ``[low, high]``: around a typical value
    that depends on the player's skill (better players sit lower in the range), within 10%."""
    low, high = max(1, low), max(1, high)
    # Somewhere in the lower part of the range on a log scale: lap times of a few minutes in
    # 1..3,600,000 ms, not an hour.
    typical: float = low * (high / low) ** (0.35 + 0.1 * (1.6 - player.skill))
    return max(low, min(high, round(typical * rng.uniform(0.9, 1.1))))


@dataclass(slots=True)
class Pacer:
    """When the next request is due, at ``rate`` a second.

    The schedule is fixed in advance (request ``i`` at ``start + i / rate``), so jitter does not
    accumulate; but when the sender has fallen more than a second behind (a stalled server), the
    schedule restarts from now rather than sending the backlog as a burst.
    """

    rate: float
    start: float
    sent: int = 0

    def due(self) -> float:
        return self.start + self.sent / self.rate

    def advance(self, now: float) -> None:
        self.sent += 1
        if now - self.due() > 1.0:
            self.start, self.sent = now, 0


@dataclass(slots=True)
class Tally:
    """What happened so far; one line of it is printed each second."""

    sent: int = 0
    ok: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    leader: tuple[str, int] | None = None

    def record(self, outcome: str) -> None:
        self.sent += 1
        if outcome == "ok":
            self.ok += 1
        else:
            self.failed[outcome] = self.failed.get(outcome, 0) + 1

    def line(self, elapsed: float) -> str:
        text = f"{elapsed:5.0f}s  sent {self.sent}  ok {self.ok}"
        if self.failed:
            text += "  failed " + ", ".join(f"{k} {v}" for k, v in sorted(self.failed.items()))
        if self.leader is not None:
            text += f"  leader {self.leader[0]} ({self.leader[1]:,})"
        return text


def _bounded(
    kind: Callable[[str], float], low: float, high: float, what: str
) -> Callable[..., float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number, not {text!r}") from None
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{what} must be between {low:g} and {high:g}")
        return value

    return parse


def users_arg(text: str) -> int:
    """``--users``: 1 to 1000 players."""
    return int(_bounded(int, 1, MAX_USERS, "--users")(text))


def rate_arg(text: str) -> float:
    """``--rate``: updates a second, above 0 and at most 1000."""
    value = _bounded(float, 0, MAX_RATE, "--rate")(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("--rate must be above 0")
    return value


def wait_arg(text: str) -> float:
    """``--wait``: seconds, 0 to 600."""
    return _bounded(float, 0, 600, "--wait")(text)


def duration_arg(text: str) -> float:
    """``--duration``: seconds, above 0 and at most a day."""
    value = _bounded(float, 0, MAX_DURATION, "--duration")(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("--duration must be above 0")
    return value


class _Sender:
    """One kept-alive HTTP connection to the server, reopened after a failure."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DemoError(f"--url must be an http:// or https:// address, not {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        self._path = self._base + "/api/scores/update"
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def wait_until_up(
        self, seconds: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        """Poll ``/healthz`` until it answers 200, for at most ``seconds`` (a server that is
        still starting); then the demo goes on either way, and its first post says why not."""
        deadline = clock() + seconds
        while clock() < deadline:
            try:
                if self._request("GET", self._base + "/healthz", None)[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            sleep(0.2)

    def post(self, body: bytes) -> tuple[int, bytes]:
        return self._request("POST", self._path, body)

    def _request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            self._conn.request(method, path, body=body, headers=headers)
            response = self._conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def run(
    url: str,
    *,
    secret: bytes,
    users: int = 20,
    rate: float = 5.0,
    duration: float = 120.0,
    delta_range: tuple[int, int] = (1, 1000),
    metrics: Mapping[str, tuple[int, int]] | None = None,
    wait: float = 0.0,
    audience: str | None = None,
    issuer: str | None = None,
    out: TextIO,
    seed: int | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Tally:
    """Post updates to ``url`` until ``duration`` passes; return what happened.

    ``metrics``: the metrics to post events of, with each one's range (default: ``points`` in
    ``delta_range``). ``wait``: seconds to wait first for a server that is still starting.

    Ctrl-C ends it early, like the end of ``duration``; either way a last line sums it up.
    Raises :class:`DemoError` when the server cannot be reached at the start or refuses the
    demo's tokens (a different secret).
    """
    from scoreboard.auth.mint import mint

    ranges = dict(metrics) if metrics else {DEFAULT_METRIC: delta_range}
    kinds = sorted(ranges)
    rng = random.Random(seed)
    players = cast(users, rng)
    weights = [p.activity for p in players]
    ttl = int(duration) + 300
    signed = {
        p.user_id: mint(secret, p.user_id, ttl=ttl, name=p.name, audience=audience, issuer=issuer)
        for p in players
    }
    names = {p.user_id: p.name for p in players}
    run_id = uuid.uuid4().hex[:8]
    sender = _Sender(url)
    if wait > 0:
        sender.wait_until_up(wait, clock, sleep)
    tally = Tally()
    start = clock()
    pacer = Pacer(rate, start)
    next_report = start + 1.0
    try:
        while True:
            now = clock()
            if now - start >= duration:
                break
            if now >= next_report:
                out.write(tally.line(now - start) + "\n")
                out.flush()
                next_report += 1.0
            wait = min(pacer.due(), next_report, start + duration) - now
            if wait > 0:
                sleep(wait)
                continue
            player = rng.choices(players, weights)[0]
            metric = rng.choice(kinds)
            value = points if metric == DEFAULT_METRIC else measurement
            update: dict[str, object] = {
                "user_id": player.user_id,
                "score_delta": value(player, rng, *ranges[metric]),
                "auth_token": signed[player.user_id],
                "action_id": f"demo-{run_id}-{tally.sent}",
            }
            if metric != DEFAULT_METRIC:
                update["metric"] = metric
            body = orjson.dumps(update)
            try:
                status, answer = sender.post(body)
            except (OSError, http.client.HTTPException) as exc:
                if tally.ok == 0:
                    raise DemoError(f"cannot reach {url}: {exc} (is the server running?)") from None
                tally.record("unreachable")
            else:
                if status == 401 and tally.ok == 0:
                    raise DemoError(
                        "the server refused the demo's tokens: run the demo in the server's "
                        "folder, or give both the same SCOREBOARD_JWT_SECRET"
                    )
                tally.record("ok" if status == 200 else str(status))
                if status == 200:
                    result = orjson.loads(answer)
                    if result.get("rank") == 1:  # on the default board
                        tally.leader = (names[player.user_id], int(result["new_score"]))
            pacer.advance(clock())
    except KeyboardInterrupt:
        out.write("stopped\n")
    finally:
        sender.close()
    out.write(tally.line(clock() - start) + "  (done)\n")
    out.flush()
    return tally
