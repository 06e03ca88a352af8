"""Outbound webhooks: what an endpoint is, what a delivery is, which events there are and what
their bodies hold, how a body is signed, when a failed delivery is tried again, and which URLs
may be registered (docs/webhooks.md).

This module does no I/O: resolving a URL's host is passed in (``Resolver``), sending is the
``Courier``'s (``scoreboard.courier``), storing is the ``Outbox`` port's.

- **Signatures** are Standard Webhooks' (``webhook-id``, ``webhook-timestamp``,
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``), made by the
  ``standardwebhooks`` library itself, so what a receiver verifies with it is what we made.
  For ``ROTATION_OVERLAP`` after a rotation the previous secret signs too (a second ``v1,``).
- **Retries**: exponential backoff with full jitter (``backoff``), until ``retry_window``
  after the delivery was queued; then it has failed for good, and so has its endpoint.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook as _Signer

from scoreboard.errors import InvalidRequest

EVENTS = ("period.closed", "top.entered", "top.left", "score.voided")
TOP_N = 10
"""The top whose entries and exits are events (the top 10)."""
MAX_BODY = 64 * 1024
"""No body is ever larger: an event that would be is cut down (``fit``)."""
SEND_TIMEOUT = 10.0
ROTATION_OVERLAP = timedelta(hours=24)
URL_MAX = 2048
SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix, not a secret)

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""The addresses a host name resolves to (``getaddrinfo``)."""


@dataclass(frozen=True, slots=True)
class Webhook:
    id: str
    url: str
    events: tuple[str, ...]
    boards: tuple[str, ...] | None
    """``None``: every board (``score.voided`` concerns the boards its metric feeds)."""
    secret: str
    created_at: datetime
    enabled: bool = True
    old_secret: str | None = None
    old_secret_until: datetime | None = None
    disabled_at: datetime | None = None

    def wants(self, notice: Notice) -> bool:
        if not self.enabled or notice.event not in self.events:
            return False
        return self.boards is None or any(b in self.boards for b in notice.boards)

    def secrets_at(self, now: datetime) -> tuple[str, ...]:
        """The secrets that sign a message sent at ``now``: the current one, and the previous
        one during the overlap after a rotation."""
        until = self.old_secret_until
        if self.old_secret is not None and until is not None and now < until:
            return (self.secret, self.old_secret)
        return (self.secret,)


@dataclass(frozen=True, slots=True)
class Notice:
    """One logical event, before it is queued for each webhook that wants it. ``key`` is the
    same in every process that comes to know the event (so it is queued once per webhook);
    ``user_id``, who it is about (an erasure deletes it)."""

    event: str
    key: str
    boards: tuple[str, ...]
    data: dict[str, Any]
    user_id: str | None = None
    at: datetime | None = None

    def body(self, at: datetime) -> str:
        """The JSON body, as every webhook receives it."""
        return fit({"type": self.event, "timestamp": _iso(self.at or at), "data": self.data})


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    message_id: str
    webhook_id: str
    event: str
    payload: str
    status: str
    """``pending``, ``delivered`` or ``failed`` (gave up)."""
    attempts: int
    next_at: datetime
    created_at: datetime
    last_error: str | None = None
    delivered_at: datetime | None = None
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A due delivery a sender holds (until ``lease_until``), with its endpoint."""

    delivery: Delivery
    webhook: Webhook


@dataclass(frozen=True, slots=True)
class Policy:
    """Where webhooks may point, and how long a delivery is retried."""

    allow_hosts: frozenset[str] = frozenset()
    """Hosts taken over plain ``http`` and whatever they resolve to (tests: ``127.0.0.1``)."""
    retry_window: timedelta = timedelta(hours=24)
    retry_base: float = 5.0
    """Seconds before the first retry; doubled each time (with jitter), at most ``retry_max``."""
    retry_max: float = 3600.0
    lease: float = 60.0
    """Seconds a sender holds a delivery; after it, another may take it (the sender died)."""
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: full jitter over an exponential cap, so
        endpoints that fail together are not retried together."""
        cap = min(self.retry_max, self.retry_base * 2.0 ** max(0, attempts - 1))
        return cap / 2 + self.rng.uniform(0, cap / 2)

    def allowed(self, host: str) -> bool:
        return host.lower() in self.allow_hosts

    async def check_url(self, url: object, resolve: Resolver) -> str:
        """The URL, if a webhook may point there; ``InvalidRequest`` otherwise: ``https``
        only, and a host that resolves only to public addresses, unless the host is allowed
        (``SCOREBOARD_WEBHOOK_ALLOW_HOSTS``). Checked again before every send (a name may
        resolve elsewhere later): see :meth:`target`."""
        await self._checked(url, resolve)
        assert isinstance(url, str)  # _checked refuses anything else
        return url

    async def target(self, url: str, resolve: Resolver) -> Target:
        """Where one attempt connects: ``url`` checked now, and pinned to the address the
        check found, so the connection cannot go where a second lookup would send it (DNS
        rebinding: a public address for the check, a private one for the connect). The host
        name still goes in the ``Host`` header and in TLS (SNI and the certificate check).
        An allowed host is connected by name, as it is written."""
        addresses = await self._checked(url, resolve)
        if addresses is None:
            return Target(url)
        parts = urlsplit(url)
        address = addresses[0]
        literal = f"[{address}]" if ":" in address else address
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        return Target(parts._replace(netloc=netloc).geturl(), parts.netloc, parts.hostname)

    async def _checked(self, url: object, resolve: Resolver) -> list[str] | None:
        """The public addresses the URL's host resolves to now (``None``: an allowed host,
        not resolved here); ``InvalidRequest`` when the URL may not be used."""
        if not isinstance(url, str) or not 1 <= len(url) <= URL_MAX:
            raise InvalidRequest(f"url must be 1-{URL_MAX} characters", code="invalid_url")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise InvalidRequest("url is not a URL", code="invalid_url") from None
        host = parts.hostname
        if parts.scheme not in ("https", "http") or not host:
            raise InvalidRequest("url must be an https URL", code="invalid_url")
        if parts.username is not None or parts.password is not None:
            raise InvalidRequest("url must not carry credentials", code="invalid_url")
        if any(c.isspace() or ord(c) < 32 for c in url):
            raise InvalidRequest("url is not a URL", code="invalid_url")
        if self.allowed(host):
            return None
        if parts.scheme != "https":
            raise InvalidRequest("url must be an https URL", code="invalid_url")
        try:
            addresses = await resolve(host, port or 443)
        except OSError:
            raise InvalidRequest(f"url: cannot resolve '{host}'", code="unresolvable_url") from None
        if not addresses:
            raise InvalidRequest(f"url: cannot resolve '{host}'", code="unresolvable_url")
        for address in addresses:
            if not is_public(address):
                raise InvalidRequest(
                    "url resolves to a private, loopback or link-local address",
                    code="forbidden_url",
                )
        return list(addresses)


@dataclass(frozen=True, slots=True)
class Target:
    """Where one delivery attempt connects (:meth:`Policy.target`)."""

    url: str
    """The URL to connect to: the webhook's, with its host replaced by a checked address."""
    host_header: str | None = None
    """The webhook URL's ``host[:port]``, sent as ``Host`` when ``url`` names an address."""
    server_name: str | None = None
    """The host name TLS presents (SNI) and verifies the certificate against."""


def is_public(address: str) -> bool:
    """Whether ``address`` is one a webhook may reach: not private, loopback, link-local,
    multicast, reserved or unspecified (IPv4-mapped IPv6 judged as its IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_id() -> str:
    return "wh_" + secrets.token_hex(8)


def new_message_id() -> str:
    return "msg_" + secrets.token_hex(12)


def headers(message_id: str, secrets_: Sequence[str], at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of ``body`` sent at ``at``: one ``v1,`` signature per
    secret, space-separated."""
    signatures = [_Signer(secret).sign(message_id, at, body) for secret in secrets_]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
    }


def fit(payload: dict[str, Any]) -> str:
    """``payload`` as JSON within ``MAX_BODY``: a top or a name list too long is cut (with
    ``"truncated": true``). Our events are small; this is the guarantee, not the rule."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    if len(body.encode()) <= MAX_BODY:
        return body
    # Only the short scalar fields are kept: ids, ranks, scores (never cut JSON in half).
    data = {
        name: value
        for name, value in dict(payload.get("data", {})).items()
        if value is None
        or isinstance(value, bool | int)
        or (isinstance(value, str) and len(value) <= 256)
    }
    data["truncated"] = True
    return json.dumps({**payload, "data": data}, separators=(",", ":"), ensure_ascii=False)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# -- the events -------------------------------------------------------------------------------


def _rows(top: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {"rank": e.rank, "user_id": e.user_id, "username": e.username, "score": e.score}
        for e in top
    ]


def period_closed(board: str, period: str, top: Sequence[Any], at: datetime) -> Notice:
    """``top``: the period's final top (``RankedEntry`` rows, best first)."""
    data = {"board": board, "period": period, "top": _rows(top[:TOP_N])}
    return Notice("period.closed", f"period.closed:{board}:{period}", (board,), data, at=at)


def top_changes(
    board: str, period: str, seq: int, before: Sequence[Any], after: Sequence[Any], at: datetime
) -> list[Notice]:
    """``top.entered`` for each user in the top 10 of ``after`` who was not in ``before``,
    ``top.left`` for each the other way (rank: where they are now, ``None`` when unknown). Keyed
    on the board's ``seq`` of the change, which the rank index assigns once however many
    processes see it."""
    old = {e.user_id: e for e in before[:TOP_N]}
    new = {e.user_id: e for e in after[:TOP_N]}
    notices = []
    for user_id, entry in new.items():
        if user_id not in old:
            notices.append(_top("top.entered", board, period, seq, entry, entry.rank, at))
    for user_id, entry in old.items():
        if user_id not in new:
            notices.append(_top("top.left", board, period, seq, entry, None, at))
    return notices


def _top(
    event: str, board: str, period: str, seq: int, entry: Any, rank: int | None, at: datetime
) -> Notice:
    data = {
        "board": board,
        "period": period,
        "user": {"user_id": entry.user_id, "username": entry.username, "score": entry.score},
        "rank": rank,
    }
    key = f"{event}:{board}:{period}:{seq}:{entry.user_id}"
    return Notice(event, key, (board,), data, user_id=entry.user_id, at=at)


def score_voided(
    event_id: int, user_id: str, metric: str, delta: int, boards: Sequence[str]
) -> Notice:
    """Queued in the void's transaction, timestamped by it."""
    data = {
        "event_id": event_id,
        "user_id": user_id,
        "metric": metric,
        "delta": delta,
        "boards": list(boards),
    }
    # A void is queued in its own transaction (and a second void of the same event, after a
    # restore, is a new event): the key only has to be unique.
    key = f"score.voided:{event_id}:{secrets.token_hex(8)}"
    return Notice("score.voided", key, tuple(boards), data, user_id=user_id)


def fan_out(
    webhooks: Sequence[Webhook], notice: Notice, now: datetime
) -> list[tuple[Webhook, str, str]]:
    """``(webhook, message_id, body)`` for every webhook that wants ``notice``."""
    body = notice.body(now)
    return [(w, new_message_id(), body) for w in webhooks if w.wants(notice)]


def parse_list(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    value = json.loads(text)
    return tuple(str(v) for v in value)


def dump_list(values: Sequence[str] | None) -> str | None:
    return None if values is None else json.dumps(list(values))


def webhook_of(row: Mapping[str, Any], when: Callable[[Any], datetime | None]) -> Webhook:
    """A ``webhooks`` row (by column name) as a :class:`Webhook`; ``when`` reads a time."""
    created = when(row["created_at"])
    assert created is not None
    return Webhook(
        id=row["id"],
        url=row["url"],
        events=parse_list(row["events"]) or (),
        boards=parse_list(row["boards"]),
        secret=row["secret"],
        created_at=created,
        enabled=bool(row["enabled"]),
        old_secret=row["old_secret"],
        old_secret_until=when(row["old_secret_until"]),
        disabled_at=when(row["disabled_at"]),
    )
