"""An identity provider's public keys, published as a JWKS document at a URL we are configured
with (never one a token names)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Awaitable, Callable

import jwt

from scoreboard.auth.algorithms import ASYMMETRIC
from scoreboard.auth.keys import PublicKey, key_fits
from scoreboard.errors import Unavailable

log = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[bytes]]


class JwksKeys:
    """The public keys published at a JWKS URL, fetched when first needed and kept.

    Refresh policy: the set is fetched again when it is older than ``max_age`` seconds, or when a
    token names a ``kid`` the set lacks (a key rotation) — but never more often than once per
    ``min_interval`` seconds, whatever tokens arrive, so a flood of made-up ``kid`` values costs
    the key server one request per interval. Concurrent requests share one fetch. A failed
    refresh keeps the keys we have; with none at all, verification is ``Unavailable`` (503: the
    fault is not the client's). The URL comes only from the settings, never from a token.
    """

    def __init__(
        self,
        url: str,
        *,
        max_age: float = 600.0,
        min_interval: float = 30.0,
        timeout: float = 5.0,
        max_bytes: int = 256 * 1024,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._max_age = max_age
        self._min_interval = min_interval
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._fetch = fetch or self._fetch_url
        self._clock = clock
        self._keys: list[tuple[str | None, str | None, PublicKey]] | None = None
        self._fetched_at = -float("inf")
        self._attempted_at = -float("inf")
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many fetches were attempted (for tests and logs)."""

    async def key_for(self, algorithm: str, kid: str | None) -> PublicKey | None:
        """The key to verify a token of ``algorithm`` naming ``kid``, or ``None``."""
        now = self._clock()
        if self._keys is None or now - self._fetched_at > self._max_age:
            await self._refresh()
        key = self._find(algorithm, kid)
        if key is None and kid is not None:
            await self._refresh()  # perhaps a rotated key: at most once per min_interval
            key = self._find(algorithm, kid)
        return key

    def _find(self, algorithm: str, kid: str | None) -> PublicKey | None:
        candidates = [
            key
            for key_id, alg, key in self._keys or ()
            if (kid is None or key_id == kid)
            and alg in (None, algorithm)
            and key_fits(algorithm, key)
        ]
        # Without a kid, only an unambiguous set will do.
        return candidates[0] if len(candidates) == 1 else None

    async def _refresh(self) -> None:
        async with self._lock:
            now = self._clock()
            if now - self._attempted_at < self._min_interval:
                if self._keys is None:
                    raise Unavailable("the token signing keys could not be fetched")
                return
            self._attempted_at = now
            self.fetches += 1
            try:
                keys = _parse_jwks(await self._fetch())
            except (OSError, ValueError) as exc:
                log.warning("JWKS fetch failed", extra={"url": self.url, "error": str(exc)})
                if self._keys is None:
                    raise Unavailable("the token signing keys could not be fetched") from None
                return
            self._keys = keys
            self._fetched_at = self._clock()
            log.info("JWKS fetched", extra={"url": self.url, "keys": len(keys)})

    async def _fetch_url(self) -> bytes:
        return await asyncio.to_thread(self._fetch_url_blocking)

    def _fetch_url_blocking(self) -> bytes:
        request = urllib.request.Request(  # noqa: S310 (the scheme is checked in the settings)
            self.url, headers={"Accept": "application/json", "User-Agent": "scoreboard"}
        )
        with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
            body: bytes = response.read(self._max_bytes + 1)
        if len(body) > self._max_bytes:
            raise ValueError(f"the key set is over {self._max_bytes} bytes")
        return body


def _parse_jwks(body: bytes) -> list[tuple[str | None, str | None, PublicKey]]:
    """The usable public keys of a JWKS document: ``(kid, alg, key)``. Symmetric (``oct``)
    and private keys are dropped: a key published on the web verifies asymmetric tokens only."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"the key set is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("the key set must be an object with a 'keys' list")
    keys: list[tuple[str | None, str | None, PublicKey]] = []
    for item in document["keys"]:
        if not isinstance(item, dict) or item.get("use", "sig") != "sig":
            continue
        try:
            jwk = jwt.PyJWK(item)
        except jwt.PyJWTError:
            continue
        key = jwk.key
        if not any(key_fits(alg, key) for alg in ASYMMETRIC):
            continue
        alg = item.get("alg")
        kid = item.get("kid")
        keys.append(
            (kid if isinstance(kid, str) else None, alg if isinstance(alg, str) else None, key)
        )
    if not keys:
        raise ValueError("the key set holds no usable public signing key")
    return keys
