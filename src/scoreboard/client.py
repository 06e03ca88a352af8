"""A Python client for a Scoreboard service: post score updates, read boards, mint tokens.

For a game's backend (or a script) that talks to the service over HTTP; docs/client-python.md
shows it in use. :class:`ScoreboardClient` has a blocking and an ``async`` form of every call
(``top10`` and ``top10_async``, ...), sharing one retry policy:

- **A retried update can never count twice.** Every update carries an ``action_id`` (the
  caller's, a grant's ``act``, or a random one made once per call), and every attempt of one call
  sends the same one: if an answer is lost after the service committed, the retry is answered
  with the committed result and adds nothing.
- **Retry-After is obeyed.** A 429 or 503 is retried after the seconds its ``Retry-After`` names
  (a date is accepted too), unless that is longer than ``RetryPolicy.max_retry_after``: then the
  typed error is raised at once rather than blocking the caller for minutes. Lost connections,
  timeouts, 502 and 504 are retried after an exponential backoff with full jitter. Anything else
  (400, 401, 409, ...) is final: retrying cannot change the answer.
- **Errors are typed.** Every answer other than a 200 raises a subclass of
  :class:`ScoreboardHTTPError` carrying the status and the service's JSON error body (``code``,
  ``message``); a service that cannot be reached after the retries raises
  :class:`ScoreboardUnreachable` with the last transport error as its cause.

:func:`mint_token` and :func:`mint_grant` sign login tokens and score grants for a backend that
holds the service's HMAC secret (HS256) or the private key whose public half the service is given
(RS256, ES256, EdDSA); ``scoreboard token`` and the service's own tests use the same functions.

The module is light to import: ``httpx`` and the standard library at import time, PyJWT when a
token is minted, and nothing of the server (FastAPI, SQLAlchemy, uvicorn, ...), so a backend can
use it without loading the service.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from scoreboard import __version__

GRANT_TYPE = "scoreboard-grant+jwt"
"""The JOSE header ``typ`` that makes a token a score grant (the service's
``auth.verify.GRANT_TYPE``)."""
DEFAULT_METRIC = "points"
ALGORITHMS = ("HS256", "RS256", "ES256", "EdDSA")
"""The algorithms the service can verify (``SCOREBOARD_JWT_ALGORITHMS``)."""
MIN_SECRET_BYTES = 32
"""The service refuses a shorter HS256 secret."""

# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placement:
    """Where an update left the user on one board: the board's current period, the user's
    aggregate there and rank (``None`` when the service could not count it at once)."""

    period: str
    score: int
    rank: int | None


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """The service's answer to an update, and the ``action_id`` the client sent with it (the
    caller's, the grant's ``act``, or the one generated for the call).

    ``new_score`` and ``rank`` are the default board's (``None`` when the update's metric does
    not feed it); ``boards`` holds every board the update fed."""

    user_id: str
    new_score: int | None
    rank: int | None
    boards: Mapping[str, Placement]
    action_id: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One row of a board."""

    rank: int
    user_id: str
    username: str | None
    score: int


@dataclass(frozen=True, slots=True)
class Top:
    """A board's top 10, best first. ``board`` and ``period`` are ``None`` for the default
    board's seed endpoint (``GET /api/scores/top10``), which does not name them."""

    entries: tuple[Entry, ...]
    board: str | None = None
    period: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a board: ``entries`` from rank ``offset + 1``, of ``total`` users."""

    entries: tuple[Entry, ...]
    total: int
    offset: int
    limit: int
    board: str | None = None
    period: str | None = None


@dataclass(frozen=True, slots=True)
class Standing:
    """One user's score and rank on a board."""

    user_id: str
    username: str | None
    score: int
    rank: int
    updated_at: datetime
    board: str | None = None
    period: str | None = None


@dataclass(frozen=True, slots=True)
class Period:
    """A board's period: ``starts_at``/``ends_at`` are ``None`` where it is unbounded."""

    id: str
    starts_at: datetime | None
    ends_at: datetime | None


@dataclass(frozen=True, slots=True)
class Board:
    """A board the service serves, with its current period."""

    id: str
    title: str
    metric: str
    aggregate: str
    order: str
    reset: str
    timezone: str
    period: Period


# --- errors ---------------------------------------------------------------------------------


class ScoreboardClientError(Exception):
    """Anything this client raises about the service."""


class ScoreboardUnreachable(ScoreboardClientError):
    """No answer after the retries (refused, reset, timed out); ``__cause__`` is the last
    transport error. An update may or may not have been applied: call again with the same
    ``action_id``, which cannot count it twice."""


class ScoreboardHTTPError(ScoreboardClientError):
    """An answer other than 200: its ``status``, the JSON error body's ``code`` and ``message``
    (the service's; ``http_<status>`` and the body's text for a body that is not the service's,
    from a proxy say), and ``retry_after`` in seconds when the answer said when to come back.
    The service guarantees that such an answer changed nothing."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class BadRequest(ScoreboardHTTPError):
    """400: the request broke a rule (a field, a parameter, an unknown metric)."""


class Unauthorized(ScoreboardHTTPError):
    """401: the token is missing, invalid, expired, or for another user."""


class Forbidden(ScoreboardHTTPError):
    """403: the user is banned."""


class NotFound(ScoreboardHTTPError):
    """404: no such board, period or user."""


class RequestTimeout(ScoreboardHTTPError):
    """408: the request's body did not arrive in time."""


class Conflict(ScoreboardHTTPError):
    """409: the ``action_id`` was used with another delta or metric, or the score would leave
    its range."""


class PayloadTooLarge(ScoreboardHTTPError):
    """413: the body is over the service's limit."""


class RateLimited(ScoreboardHTTPError):
    """429: over a rate or velocity limit, still so after the retries (or asked to wait longer
    than ``RetryPolicy.max_retry_after``)."""


class ServiceUnavailable(ScoreboardHTTPError):
    """503: the service cannot commit right now, still so after the retries."""


class ServerError(ScoreboardHTTPError):
    """Any other 5xx."""


_ERRORS: dict[int, type[ScoreboardHTTPError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    408: RequestTimeout,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
    503: ServiceUnavailable,
}

# --- retries --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry. ``attempts`` counts the first try (1: never retry);
    without a ``Retry-After`` the n-th retry waits a random time up to ``min(max_backoff,
    backoff * 2**(n-1))`` (full jitter: many clients failing together do not retry together).
    A ``Retry-After`` above ``max_retry_after`` is not waited for: the error is raised."""

    attempts: int = 5
    backoff: float = 0.2
    max_backoff: float = 5.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.backoff < 0 or self.max_backoff < 0 or self.max_retry_after < 0:
            raise ValueError("waits must not be negative")

    def wait(self, attempt: int, outcome: httpx.Response | Exception) -> float | None:
        """Seconds to wait before trying again after ``attempt`` (1 for the first) ended in
        ``outcome``, or ``None``: do not retry (raise or return what came)."""
        if attempt >= self.attempts:
            return None
        if isinstance(outcome, Exception):
            return self._backoff(attempt) if _is_transient(outcome) else None
        status = outcome.status_code
        if status in (429, 503):
            after = retry_after(outcome.headers.get("retry-after"))
            if after is None:
                return self._backoff(attempt)
            return after if after <= self.max_retry_after else None
        if status in (502, 504):  # a proxy in front that lost the service for a moment
            return self._backoff(attempt)
        return None

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


def _is_transient(error: Exception) -> bool:
    # Not UnsupportedProtocol or LocalProtocolError: those are our mistakes, again next time.
    return isinstance(
        error, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
    )


def retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` field in seconds (RFC 9110 10.2.3: whole seconds or an HTTP date), or
    ``None`` when absent or unreadable. A date in the past is 0."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


# --- the client -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    params: dict[str, str | int] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class ScoreboardClient:
    """A client of the service at ``url`` (its base, e.g. ``https://scores.example.com``, or a
    path under which a proxy serves it).

    One object may be used from blocking code and from ``async`` code; each form opens its own
    connection pool on first use (``close()`` / ``aclose()``, or ``with`` / ``async with``). The
    async pool belongs to the event loop that first used it. ``timeout`` bounds each attempt,
    ``retry`` how many are made (see the module docstring). ``transport`` and
    ``async_transport`` replace httpx's (a proxy, a test double); ``sleep`` and ``async_sleep``
    are how the client waits between attempts."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._timeout = timeout
        self._headers = {"User-Agent": f"scoreboard-client/{__version__}", **(headers or {})}
        self._transport = transport
        self._async_transport = async_transport
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None

    # -- updates

    def post_update(
        self,
        user_id: str,
        score_delta: int,
        token: str,
        *,
        action_id: str | None = None,
        metric: str | None = None,
    ) -> UpdateResult:
        """Add ``score_delta`` to ``user_id``'s ``metric`` (default ``points``), authorized by
        ``token`` (a login token for the user, or a score grant). Returns once the update is
        durable; retries as the module docstring says, with one ``action_id`` for every
        attempt."""
        call, action = _update_call(user_id, score_delta, token, action_id, metric)
        return _update_result(self._send(call), action)

    async def post_update_async(
        self,
        user_id: str,
        score_delta: int,
        token: str,
        *,
        action_id: str | None = None,
        metric: str | None = None,
    ) -> UpdateResult:
        """:meth:`post_update`, awaited."""
        call, action = _update_call(user_id, score_delta, token, action_id, metric)
        return _update_result(await self._send_async(call), action)

    # -- reads

    def top10(self, board: str | None = None, *, period: str | None = None) -> Top:
        """The top 10 of ``board`` (default: the service's default board) in its current period
        or in ``period``."""
        return _top(self._send(_top_call(board, period)))

    async def top10_async(self, board: str | None = None, *, period: str | None = None) -> Top:
        return _top(await self._send_async(_top_call(board, period)))

    def page(
        self,
        board: str | None = None,
        *,
        offset: int = 0,
        limit: int = 10,
        period: str | None = None,
    ) -> Page:
        """``limit`` (1-100) rows of ``board`` from rank ``offset + 1``, and the board's size."""
        return _page(self._send(_page_call(board, offset, limit, period)))

    async def page_async(
        self,
        board: str | None = None,
        *,
        offset: int = 0,
        limit: int = 10,
        period: str | None = None,
    ) -> Page:
        return _page(await self._send_async(_page_call(board, offset, limit, period)))

    def user(
        self, user_id: str, board: str | None = None, *, period: str | None = None
    ) -> Standing:
        """``user_id``'s score and rank; :class:`NotFound` for a user with no score there."""
        return _standing(self._send(_user_call(user_id, board, period)))

    async def user_async(
        self, user_id: str, board: str | None = None, *, period: str | None = None
    ) -> Standing:
        return _standing(await self._send_async(_user_call(user_id, board, period)))

    def boards(self) -> list[Board]:
        """Every board the service serves, the default one first."""
        return _boards(self._send(_Call("GET", "/api/boards")))

    async def boards_async(self) -> list[Board]:
        return _boards(await self._send_async(_Call("GET", "/api/boards")))

    # -- lifecycle

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
            self._async = None

    def __enter__(self) -> ScoreboardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> ScoreboardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- sending, with retries

    def _send(self, call: _Call) -> Any:
        if self._sync is None:
            self._sync = httpx.Client(
                base_url=self.url,
                timeout=self._timeout,
                headers=self._headers,
                transport=self._transport,
            )
        attempt = 0
        while True:
            attempt += 1
            outcome: httpx.Response | Exception
            try:
                outcome = self._sync.request(
                    call.method, call.path, params=call.params, json=call.body, headers=call.headers
                )
            except httpx.TransportError as exc:
                outcome = exc
            wait = self.retry.wait(attempt, outcome)
            if wait is None:
                return _body(outcome)
            self._sleep(wait)

    async def _send_async(self, call: _Call) -> Any:
        if self._async is None:
            self._async = httpx.AsyncClient(
                base_url=self.url,
                timeout=self._timeout,
                headers=self._headers,
                transport=self._async_transport,
            )
        attempt = 0
        while True:
            attempt += 1
            outcome: httpx.Response | Exception
            try:
                outcome = await self._async.request(
                    call.method, call.path, params=call.params, json=call.body, headers=call.headers
                )
            except httpx.TransportError as exc:
                outcome = exc
            wait = self.retry.wait(attempt, outcome)
            if wait is None:
                return _body(outcome)
            await self._async_sleep(wait)


def _body(outcome: httpx.Response | Exception) -> Any:
    """A 200's JSON, or the typed error of anything else."""
    if isinstance(outcome, Exception):
        if isinstance(outcome, httpx.TransportError):
            raise ScoreboardUnreachable(f"no answer from the service: {outcome}") from outcome
        raise outcome
    if outcome.status_code == 200:
        return outcome.json()
    raise _error(outcome)


def _error(response: httpx.Response) -> ScoreboardHTTPError:
    status = response.status_code
    code, message = f"http_{status}", response.text[:500]
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        code = body["error"]
        message = str(body.get("message", ""))
    cls = _ERRORS.get(status, ServerError if status >= 500 else ScoreboardHTTPError)
    return cls(status, code, message, retry_after=retry_after(response.headers.get("retry-after")))


# --- requests and answers -------------------------------------------------------------------


def _segment(value: str) -> str:
    return quote(value, safe="")


def _update_call(
    user_id: str, score_delta: int, token: str, action_id: str | None, metric: str | None
) -> tuple[_Call, str]:
    if action_id is None:
        action_id = _grant_action(token) or uuid.uuid4().hex
    body: dict[str, Any] = {"user_id": user_id, "score_delta": score_delta, "action_id": action_id}
    if metric is not None:
        body["metric"] = metric
    # In the header rather than the body: proxies and logs treat Authorization as a secret.
    call = _Call(
        "POST", "/api/scores/update", body=body, headers={"Authorization": f"Bearer {token}"}
    )
    return call, action_id


def _grant_action(token: str) -> str | None:
    """A grant's ``act`` (its idempotency key: an update sent with it must name the same), read
    without verifying: the service verifies. ``None`` for anything that is not a grant."""
    try:
        header_part, payload_part = token.split(".")[:2]
        header = json.loads(_b64(header_part))
        payload = json.loads(_b64(payload_part))
    except (ValueError, binascii.Error):
        return None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        return None
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") != GRANT_TYPE:
        return None
    act = payload.get("act")
    return act if isinstance(act, str) else None


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _update_result(body: Any, action_id: str) -> UpdateResult:
    return UpdateResult(
        user_id=body["user_id"],
        new_score=body["new_score"],
        rank=body["rank"],
        boards={
            board: Placement(period=b["period"], score=b["score"], rank=b["rank"])
            for board, b in body.get("boards", {}).items()
        },
        action_id=action_id,
    )


def _board_path(board: str | None, seed: str, per_board: str) -> str:
    return seed if board is None else f"/api/boards/{_segment(board)}{per_board}"


def _with_period(period: str | None) -> dict[str, str | int]:
    return {} if period is None else {"period": period}


def _top_call(board: str | None, period: str | None) -> _Call:
    if board is None and period is not None:
        raise ValueError("a period needs a board")
    return _Call("GET", _board_path(board, "/api/scores/top10", "/top10"), _with_period(period))


def _page_call(board: str | None, offset: int, limit: int, period: str | None) -> _Call:
    if board is None and period is not None:
        raise ValueError("a period needs a board")
    params = {**_with_period(period), "offset": offset, "limit": limit}
    return _Call("GET", _board_path(board, "/api/scores", "/scores"), params)


def _user_call(user_id: str, board: str | None, period: str | None) -> _Call:
    if board is None and period is not None:
        raise ValueError("a period needs a board")
    seed = f"/api/users/{_segment(user_id)}"
    path = _board_path(board, seed, f"/users/{_segment(user_id)}")
    return _Call("GET", path, _with_period(period))


def _entries(rows: list[dict[str, Any]]) -> tuple[Entry, ...]:
    return tuple(Entry(r["rank"], r["user_id"], r["username"], r["score"]) for r in rows)


def _top(body: Any) -> Top:
    return Top(_entries(body["scores"]), body.get("board"), body.get("period"))


def _page(body: Any) -> Page:
    return Page(
        _entries(body["scores"]),
        total=body["total"],
        offset=body["offset"],
        limit=body["limit"],
        board=body.get("board"),
        period=body.get("period"),
    )


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _standing(body: Any) -> Standing:
    updated = _time(body["updated_at"])
    assert updated is not None
    return Standing(
        user_id=body["user_id"],
        username=body["username"],
        score=body["score"],
        rank=body["rank"],
        updated_at=updated,
        board=body.get("board"),
        period=body.get("period"),
    )


def _boards(body: Any) -> list[Board]:
    return [
        Board(
            id=b["id"],
            title=b["title"],
            metric=b["metric"],
            aggregate=b["aggregate"],
            order=b["order"],
            reset=b["reset"],
            timezone=b["timezone"],
            period=Period(
                b["period"]["id"], _time(b["period"]["starts_at"]), _time(b["period"]["ends_at"])
            ),
        )
        for b in body["boards"]
    ]


# --- minting --------------------------------------------------------------------------------


def mint_token(
    key: str | bytes | Any,
    user_id: str,
    *,
    ttl: int = 3600,
    name: str | None = None,
    algorithm: str = "HS256",
    audience: str | None = None,
    issuer: str | None = None,
    key_id: str | None = None,
    now: float | None = None,
) -> str:
    """A login token for ``user_id``, valid ``ttl`` seconds from ``now`` (default: the clock),
    that the service verifies: ``key`` is the HMAC secret for HS256, or for RS256, ES256 and
    EdDSA the private key (PEM text or a ``cryptography`` key object) whose public half the
    service has. ``name`` is shown on the board. With an identity provider's kind of key the
    service requires ``audience`` (its ``SCOREBOARD_JWT_AUDIENCE``); ``key_id`` goes in the
    header as ``kid`` (needed with a JWKS of several keys). The service refuses a ``ttl``
    longer than its ``SCOREBOARD_JWT_MAX_TTL`` (a day by default)."""
    return _sign(key, user_id, ttl, name, algorithm, audience, issuer, key_id, now, None)


def mint_grant(
    key: str | bytes | Any,
    user_id: str,
    delta: int,
    action_id: str,
    *,
    metric: str | None = None,
    name: str | None = None,
    ttl: int = 300,
    algorithm: str = "HS256",
    audience: str | None = None,
    issuer: str | None = None,
    key_id: str | None = None,
    now: float | None = None,
) -> str:
    """A score grant (``SCOREBOARD_AUTH_MODE=grant``): lets ``user_id`` add ``delta`` to
    ``metric`` (default ``points``) once, under the idempotency key ``action_id``. Mint it only
    once your backend has checked that the action happened. ``name`` (shown on the board), keys
    and the other arguments as for :func:`mint_token`; a grant is short-lived (5 minutes by
    default)."""
    if type(delta) is not int:
        raise TypeError("delta must be an int")
    if not action_id:
        raise ValueError("a grant needs an action_id")
    grant: dict[str, Any] = {"delta": delta, "act": action_id}
    if metric is not None and metric != DEFAULT_METRIC:
        grant["metric"] = metric
    return _sign(key, user_id, ttl, name, algorithm, audience, issuer, key_id, now, grant)


def _sign(
    key: str | bytes | Any,
    user_id: str,
    ttl: int,
    name: str | None,
    algorithm: str,
    audience: str | None,
    issuer: str | None,
    key_id: str | None,
    now: float | None,
    grant: dict[str, Any] | None,
) -> str:
    import jwt  # only a backend that mints pays for PyJWT (and cryptography)

    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    if algorithm == "HS256":
        if not isinstance(key, str | bytes):
            raise TypeError("HS256 signs with the secret, as text or bytes")
        if len(key.encode() if isinstance(key, str) else key) < MIN_SECRET_BYTES:
            raise ValueError(f"an HS256 secret has at least {MIN_SECRET_BYTES} bytes")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": user_id, "iat": issued, "exp": issued + ttl}
    if name:
        claims["name"] = name
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    headers: dict[str, Any] = {}
    if key_id is not None:
        headers["kid"] = key_id
    if grant is not None:
        claims.update(grant)
        headers["typ"] = GRANT_TYPE
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers or None)
