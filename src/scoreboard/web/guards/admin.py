"""Who may call ``/api/admin``: an admin key, from an allowed address, within the failure limit.

- **Keys** are ``sbk_`` and 43 characters of base64url (32 random bytes), shown once by
  ``scoreboard admin-key create`` and stored only as their SHA-256. A request names one in
  ``Authorization: Bearer sbk_...``; the key is hashed and looked up by its hash, so nothing an
  attacker sends is ever compared with a stored key (a SHA-256 it cannot steer is all the
  database compares), and the digest found is checked again with ``hmac.compare_digest``.
- **Every failure is the same 401** (no key, a malformed one, an unknown or revoked key, a user
  token, a grant): nothing tells which keys exist or existed.
- **Failures are limited per client address** (``SCOREBOARD_ADMIN_AUTH_LIMIT``, a moving
  window): an address over it gets 429 before its key is looked at, until its failures age out.
  Successes do not count.
- **Addresses**: with ``SCOREBOARD_ADMIN_ALLOWED_IPS`` set, any other client address gets 403
  before the key is looked at (``client_address``: behind a trusted proxy, the real client).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import time

import limits
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from scoreboard.errors import Forbidden, Unauthorized
from scoreboard.ports import AdminStore
from scoreboard.web.guards.client_address import IPNetwork, client_address
from scoreboard.web.guards.limits import RateLimited

KEY_PREFIX = "sbk_"
KEY_BYTES = 32
_KEY_RE = re.compile(r"sbk_[A-Za-z0-9_-]{43,128}")
_REFUSED = "a valid admin key is required: Authorization: Bearer sbk_..."


def new_key() -> str:
    """A fresh admin key: ``sbk_`` and 32 random bytes in base64url, unpadded."""
    raw = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).rstrip(b"=").decode()
    return KEY_PREFIX + raw


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class AdminGate:
    def __init__(
        self,
        keys: AdminStore,
        storage: Storage,
        *,
        allowed: str = "",
        failures: str | None = "10/minute",
    ) -> None:
        self.keys = keys
        self._allowed: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(item.strip(), strict=False)
            for item in allowed.split(",")
            if item.strip()
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self._failures = limits.parse(failures) if failures else None

    async def admit(self, request: Request) -> str:
        """The name of the key the request carries; ``Forbidden``, ``RateLimited`` or
        ``Unauthorized`` otherwise."""
        address = client_address(request)
        if self._allowed and not self._allows(address):
            raise Forbidden("this address may not use the admin API", code="address_not_allowed")
        if self._failures is not None and not await self._limiter.test(
            self._failures, "admin", address
        ):
            stats = await self._limiter.get_window_stats(self._failures, "admin", address)
            raise RateLimited(
                "too many failed admin authentications from this address; retry later",
                code="rate_limited_admin",
                limit=self._failures.amount,
                remaining=0,
                reset=max(0.0, stats.reset_time - time.time()),
            )
        name = await self._key_name(request.headers.get("authorization"))
        if name is None:
            if self._failures is not None:
                await self._limiter.hit(self._failures, "admin", address)
            raise Unauthorized(_REFUSED, code="admin_key_required")
        return name

    def _allows(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self._allowed)

    async def _key_name(self, header: str | None) -> str | None:
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or _KEY_RE.fullmatch(token) is None:
            return None
        digest = key_hash(token)
        key = await self.keys.key_by_hash(digest)
        if key is None or key.revoked_at is not None:
            return None
        # The store found it by its digest; the digests are compared once more here, in
        # constant time, so no store's lookup rules (case, padding) decide alone.
        return key.name if hmac.compare_digest(key.key_hash, digest) else None
