"""Verifying the tokens that come with updates.

The configuration, never the token, chooses how a token is checked:

- The algorithm must be in the allow-list (``SCOREBOARD_JWT_ALGORITHMS``), compared exactly, so
  ``alg: none`` in any spelling fails, and each algorithm finds only its own kind of key
  (``auth.keys``).
- Keys come from ``SCOREBOARD_JWT_SECRET`` (or the generated one), ``SCOREBOARD_JWT_PUBLIC_KEY`` (a
  PEM file) or ``SCOREBOARD_JWKS_URL``. A token that carries or points at a key of its own
  (``jku``, ``jwk``, ``x5u``, ``x5c``) is refused, and so is any ``crit`` header: we implement no
  extension, and RFC 7515 says a verifier must refuse what it does not understand.
- ``exp`` and ``sub`` are required; ``iss``/``aud`` are exact matches when configured, and the
  settings require an audience with a public key or JWKS (whose keys also sign the provider's
  other applications' tokens, RFC 8725 §3.9); ``exp`` may lie at most ``max_ttl`` ahead (a
  stolen long-lived token is worth little); leeway is bounded by the settings (at most 30 s).
- A token whose JOSE header ``typ`` is :data:`GRANT_TYPE` is a **score grant** (see
  ``auth.decision``): it must also carry ``delta`` (an integer) and ``act`` (the action id). The
  header, not a claim, carries the type (explicit typing, RFC 8725 §3.11): a login token from an
  ordinary identity provider can never acquire it.

Verification costs about as much as everything else in an update, so a verified token is cached
until its ``exp``, keyed by the whole token string: a different string (a tampered token) is a
cache miss and is verified in full. No message or log line quotes a token.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from scoreboard.auth.algorithms import ASYMMETRIC, DEFAULT, SUPPORTED
from scoreboard.auth.jwks import JwksKeys
from scoreboard.auth.keys import PublicKey, key_fits
from scoreboard.errors import Unauthorized
from scoreboard.model import DEFAULT_METRIC, is_valid_action_id

GRANT_TYPE = "scoreboard-grant+jwt"
"""The JOSE header ``typ`` of a score grant (compared case-insensitively, ``application/``
prefix allowed, as RFC 7515 §4.1.9 asks)."""
_KEY_HEADERS = ("jku", "jwk", "x5u", "x5c")
_CACHE_LIMIT = 50_000
_METRIC_RE = re.compile(r"[a-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Grant:
    """What a score grant allows: add an event of ``delta`` to ``metric`` once, under the
    idempotency key ``action_id``."""

    delta: int
    action_id: str
    metric: str = DEFAULT_METRIC


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for, until when, and (for a grant) what it allows."""

    user_id: str
    name: str | None
    expires_at: float
    grant: Grant | None = None


class TokenVerifier:
    """Verifies tokens against the configured keys and allow-list (see the module docstring)."""

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        public_key: PublicKey | None = None,
        jwks: JwksKeys | None = None,
        algorithms: Sequence[str] = DEFAULT,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
        max_ttl: float = 86_400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock`` (seconds since the epoch) decides ``exp``, ``nbf``, ``iat``, the largest
        lifetime and the cache's expiry: tests pass one to place a token at any instant."""
        unknown = set(algorithms) - set(SUPPORTED)
        if unknown or not algorithms:
            raise ValueError(f"algorithms must be some of {', '.join(SUPPORTED)}")
        if "HS256" in algorithms and secret is None:
            raise ValueError("HS256 needs a secret")
        if set(algorithms) & set(ASYMMETRIC) and public_key is None and jwks is None:
            raise ValueError(f"{', '.join(algorithms)} need a public key or a JWKS URL")
        self._secret = secret
        self._public_key = public_key
        self._jwks = jwks
        self._algorithms = frozenset(algorithms)
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway
        self._max_ttl = max_ttl
        self._clock = clock
        self._cache: dict[str, Identity] = {}

    @property
    def algorithms(self) -> frozenset[str]:
        return self._algorithms

    async def verify(self, token: str) -> Identity:
        """The identity a token proves, or ``Unauthorized`` (whose message never quotes it).
        ``Unavailable`` when the keys must be fetched and cannot be."""
        cached = self._cache.get(token)
        now = self._clock()
        if cached is not None:
            if cached.expires_at > now:
                return cached
            del self._cache[token]
        identity = await self._decode(token)
        if len(self._cache) >= _CACHE_LIMIT:
            self._evict(now)
        self._cache[token] = identity
        return identity

    def forget(self, user_id: str) -> None:
        """Drop the cached verdicts on the user's tokens (an erasure)."""
        for token in [t for t, i in self._cache.items() if i.user_id == user_id]:
            del self._cache[token]

    def _evict(self, now: float) -> None:
        expired = [t for t, i in self._cache.items() if i.expires_at <= now]
        for t in expired:
            del self._cache[t]
        if len(self._cache) >= _CACHE_LIMIT:  # still full of live tokens: drop the oldest half
            for t in list(self._cache)[: _CACHE_LIMIT // 2]:
                del self._cache[t]

    async def _key(self, algorithm: str, kid: object) -> bytes | PublicKey:
        if algorithm == "HS256":
            assert self._secret is not None  # the constructor ensures it
            return self._secret
        if self._public_key is not None and key_fits(algorithm, self._public_key):
            return self._public_key
        if self._jwks is not None:
            if kid is not None and not isinstance(kid, str):
                raise Unauthorized("the token's 'kid' must be a string", code="token_invalid")
            key = await self._jwks.key_for(algorithm, kid)
            if key is not None:
                return key
        raise Unauthorized("no configured key verifies this token", code="token_invalid")

    async def _decode(self, token: str) -> Identity:
        header = _unverified_header(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise Unauthorized("the token's algorithm is not allowed", code="token_invalid")
        for field in _KEY_HEADERS:
            if field in header:
                raise Unauthorized(
                    f"the token names its own key ('{field}'); keys come only from configuration",
                    code="token_invalid",
                )
        if "crit" in header:
            raise Unauthorized(
                "the token has critical header extensions, which are not supported",
                code="token_invalid",
            )
        key = await self._key(algorithm, header.get("kid"))
        claims = self._claims(token, key, algorithm)
        sub = claims["sub"]
        name = claims.get("name")
        if not isinstance(sub, str):
            raise Unauthorized("the token's 'sub' must be a string", code="token_invalid")
        now = self._clock()
        exp = self._times(claims, now)
        if exp > now + self._max_ttl + self._leeway:
            raise Unauthorized(
                f"the token's 'exp' is more than {self._max_ttl:g} s ahead",
                code="token_lifetime_too_long",
            )
        if name is not None and not _is_storable_name(name):
            raise Unauthorized(
                "the token's 'name' must be printable UTF-8 text", code="token_invalid"
            )
        grant = _grant(claims) if _is_grant_type(header.get("typ")) else None
        return Identity(
            user_id=sub, name=name[:128] if name else None, expires_at=float(exp), grant=grant
        )

    def _claims(self, token: str, key: bytes | PublicKey, algorithm: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                # The times are checked by _times, against our clock (PyJWT reads its own).
                options={
                    "require": ["exp", "sub"],
                    "verify_aud": self._audience is not None,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(
                f"the token lacks the '{exc.claim}' claim", code="token_invalid"
            ) from exc
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            # ValueError/TypeError: what PyJWT lets through from odd input, such as a lone
            # surrogate that cannot be encoded. Any token it cannot read is simply invalid.
            raise Unauthorized("the token is invalid", code="token_invalid") from exc
        return claims

    def _times(self, claims: dict[str, Any], now: float) -> float:
        """Check ``exp``, ``nbf`` and ``iat`` against ``now`` with the leeway (PyJWT's rules:
        expired at ``exp``; not yet valid before ``nbf``, or when issued in the future) and
        return ``exp``. Each must be a JSON number (PyJWT would also take ``"123"``)."""
        leeway = self._leeway
        exp = claims["exp"]
        if type(exp) not in (int, float):
            raise Unauthorized("the token's 'exp' must be a number", code="token_invalid")
        for name in ("nbf", "iat"):
            if name in claims and type(claims[name]) not in (int, float):
                raise Unauthorized(f"the token's '{name}' must be a number", code="token_invalid")
        if exp <= now - leeway:
            raise Unauthorized("the token has expired", code="token_expired")
        if any(name in claims and claims[name] > now + leeway for name in ("nbf", "iat")):
            raise Unauthorized("the token is not valid yet", code="token_not_yet_valid")
        return float(exp)


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, read to choose the key; PyJWT reads the same bytes again when it
    verifies, and refuses what this lets through. By hand because it is twice as fast as
    ``jwt.get_unverified_header``, and in grant mode every token is new (no cache hit)."""
    segment = token.partition(".")[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, TypeError, RecursionError) as exc:  # binascii and Unicode errors too
        raise Unauthorized("the token is invalid", code="token_invalid") from exc
    if not isinstance(header, dict):
        raise Unauthorized("the token is invalid", code="token_invalid")
    return header


def _is_grant_type(typ: object) -> bool:
    if not isinstance(typ, str):
        return False
    return typ.lower().removeprefix("application/") == GRANT_TYPE


def _grant(claims: dict[str, Any]) -> Grant:
    delta = claims.get("delta")
    action = claims.get("act")
    if type(delta) is not int:
        raise Unauthorized("the grant's 'delta' must be an integer", code="token_invalid")
    if not is_valid_action_id(action):
        raise Unauthorized(
            "the grant's 'act' must be 1-128 printable characters", code="token_invalid"
        )
    assert isinstance(action, str)
    metric = claims.get("metric", DEFAULT_METRIC)
    if not isinstance(metric, str) or _METRIC_RE.fullmatch(metric) is None:
        raise Unauthorized(
            "the grant's 'metric' must be a metric name (1-64 of a-z0-9_-)", code="token_invalid"
        )
    return Grant(delta=delta, action_id=action, metric=metric)


def _is_storable_name(name: object) -> bool:
    if not isinstance(name, str) or not name.isprintable():
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which no database column can hold
        return False
    return True
