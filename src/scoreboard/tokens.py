"""Signed tokens: verifying the ones that come with updates, minting them for the CLI.

Only the algorithms in the allow-list are accepted; the token's own header never chooses
(so ``alg: none`` or an HS token keyed with a public key cannot pass). ``exp`` and ``sub`` are
required. Verification costs about as much as everything else in an update, so a verified token
is cached until its ``exp``, keyed by the whole token string: a different string (a tampered
token) is a cache miss and is verified in full.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from scoreboard.errors import Unauthorized
from scoreboard.settings import MIN_SECRET_BYTES, Settings

log = logging.getLogger(__name__)

ALGORITHMS = ("HS256",)
_CACHE_LIMIT = 50_000
_SECRET_FILE = "jwt_secret"  # noqa: S105 (a file name, not a secret)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for, and until when."""

    user_id: str
    name: str | None
    expires_at: float


def load_or_create_secret(settings: Settings) -> bytes:
    """The HS256 secret: ``SCOREBOARD_JWT_SECRET`` if set, else one generated once and kept in
    the data folder with mode 0600, so ``serve`` and ``token`` agree without any set-up."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value().encode()
    path = settings.data_dir / _SECRET_FILE
    try:
        secret = path.read_bytes().strip()
    except FileNotFoundError:
        secret = _create_secret(path)
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret in {path} is shorter than {MIN_SECRET_BYTES} bytes")
    return secret


def _create_secret(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(secret + b"\n")
    log.warning(
        "SCOREBOARD_JWT_SECRET is not set: generated a random secret and stored it in %s "
        "(mode 0600); set SCOREBOARD_JWT_SECRET to choose your own",
        path,
    )
    return secret


class TokenVerifier:
    def __init__(
        self,
        secret: bytes,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
    ) -> None:
        self._secret = secret
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway
        self._cache: dict[str, Identity] = {}

    def verify(self, token: str) -> Identity:
        """The identity a token proves, or ``Unauthorized`` (whose message never quotes it)."""
        cached = self._cache.get(token)
        now = time.time()
        if cached is not None:
            if cached.expires_at > now:
                return cached
            del self._cache[token]
        identity = self._decode(token)
        if len(self._cache) >= _CACHE_LIMIT:
            self._evict(now)
        self._cache[token] = identity
        return identity

    def _evict(self, now: float) -> None:
        expired = [t for t, i in self._cache.items() if i.expires_at <= now]
        for t in expired:
            del self._cache[t]
        if len(self._cache) >= _CACHE_LIMIT:  # still full of live tokens: drop the oldest half
            for t in list(self._cache)[: _CACHE_LIMIT // 2]:
                del self._cache[t]

    def _decode(self, token: str) -> Identity:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=list(ALGORITHMS),
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the token has expired", code="token_expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise Unauthorized("the token is not valid yet", code="token_not_yet_valid") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(
                f"the token lacks the '{exc.claim}' claim", code="token_invalid"
            ) from exc
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            # ValueError/TypeError: what PyJWT lets through from odd input, such as a lone
            # surrogate that cannot be encoded. Any token it cannot read is simply invalid.
            raise Unauthorized("the token is invalid", code="token_invalid") from exc
        sub = claims["sub"]
        name = claims.get("name")
        exp = claims["exp"]
        if not isinstance(sub, str):
            raise Unauthorized("the token's 'sub' must be a string", code="token_invalid")
        if type(exp) not in (int, float):  # PyJWT also takes "exp": "123"; we do not
            raise Unauthorized("the token's 'exp' must be a number", code="token_invalid")
        if name is not None and not _is_storable_name(name):
            raise Unauthorized(
                "the token's 'name' must be printable UTF-8 text", code="token_invalid"
            )
        return Identity(user_id=sub, name=name[:128] if name else None, expires_at=float(exp))


def _is_storable_name(name: object) -> bool:
    if not isinstance(name, str) or not name.isprintable():
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which no database column can hold
        return False
    return True


def mint(
    secret: bytes,
    user_id: str,
    *,
    ttl: int = 3600,
    name: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
) -> str:
    """A signed HS256 token for ``user_id`` (the ``token`` command, tests and benchmarks)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl}
    if name:
        claims["name"] = name
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    return jwt.encode(claims, secret, algorithm="HS256")
