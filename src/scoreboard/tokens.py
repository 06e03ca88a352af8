"""Signed tokens: verifying the ones that come with updates, minting them for the CLI.

The configuration, never the token, chooses how a token is checked:

- The algorithm must be in the allow-list (``SCOREBOARD_JWT_ALGORITHMS``), compared exactly, so
  ``alg: none`` in any spelling fails. Each algorithm is bound to one kind of key: HS256 only ever
  gets the HMAC secret, RS256/ES256/EdDSA only a public key object of their own type. So an HS256
  token "signed" with the text of our public key (algorithm confusion) finds no key to match.
- Keys come from ``SCOREBOARD_JWT_SECRET`` (or the generated one), ``SCOREBOARD_JWT_PUBLIC_KEY`` (a
  PEM file) or ``SCOREBOARD_JWKS_URL``. A token that carries or points at a key of its own
  (``jku``, ``jwk``, ``x5u``, ``x5c``) is refused, and so is any ``crit`` header: we implement no
  extension, and RFC 7515 says a verifier must refuse what it does not understand.
- ``exp`` and ``sub`` are required; ``iss``/``aud`` are exact matches when configured, and the
  settings require an audience with a public key or JWKS (whose keys also sign the provider's
  other applications' tokens, RFC 8725 §3.9); ``exp`` may lie at most ``max_ttl`` ahead (a
  stolen long-lived token is worth little); leeway is bounded by the settings (at most 30 s).
- A token whose JOSE header ``typ`` is :data:`GRANT_TYPE` is a **score grant** (see
  ``web/auth.py``): it must also carry ``delta`` (an integer) and ``act`` (the action id). The
  header, not a claim, carries the type (explicit typing, RFC 8725 §3.11): a login token from an
  ordinary identity provider can never acquire it.

Verification costs about as much as everything else in an update, so a verified token is cached
until its ``exp``, keyed by the whole token string: a different string (a tampered token) is a
cache miss and is verified in full. No message or log line quotes a token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import shlex
import stat
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from scoreboard.errors import Unauthorized, Unavailable
from scoreboard.model import is_valid_action_id
from scoreboard.settings import MIN_SECRET_BYTES, Settings

log = logging.getLogger(__name__)

GRANT_TYPE = "scoreboard-grant+jwt"
"""The JOSE header ``typ`` of a score grant (compared case-insensitively, ``application/``
prefix allowed, as RFC 7515 §4.1.9 asks)."""
SUPPORTED_ALGORITHMS = ("HS256", "RS256", "ES256", "EdDSA")
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256", "EdDSA")
ALGORITHMS = ("HS256",)
"""The allow-list when only a secret is configured (the default)."""
MIN_RSA_BITS = 2048
_KEY_HEADERS = ("jku", "jwk", "x5u", "x5c")
_CACHE_LIMIT = 50_000
_SECRET_FILE = "jwt_secret"  # noqa: S105 (a file name, not a secret)

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


@dataclass(frozen=True, slots=True)
class Grant:
    """What a score grant allows: add ``delta`` once, under the idempotency key ``action_id``."""

    delta: int
    action_id: str


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a verified token speaks for, until when, and (for a grant) what it allows."""

    user_id: str
    name: str | None
    expires_at: float
    grant: Grant | None = None


# -- keys --------------------------------------------------------------------------------------


def key_fits(algorithm: str, key: object) -> bool:
    """Whether ``key`` is a public key of the kind ``algorithm`` verifies with."""
    if algorithm == "RS256":
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS
    if algorithm == "ES256":
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    if algorithm == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


def load_public_key(path: Path) -> PublicKey:
    """The PEM public key in ``path``; ``ValueError`` (one line) for anything else, including a
    private key (the service must never hold one) or an RSA key under 2048 bits."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"SCOREBOARD_JWT_PUBLIC_KEY: cannot read {path}: {exc.strerror}") from None
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ValueError(
            f"SCOREBOARD_JWT_PUBLIC_KEY: {path} is not a PEM public key (BEGIN PUBLIC KEY)"
        ) from None
    if not any(key_fits(alg, key) for alg in ASYMMETRIC_ALGORITHMS):
        raise ValueError(
            f"SCOREBOARD_JWT_PUBLIC_KEY: {path} must be an RSA key of at least {MIN_RSA_BITS} "
            "bits (RS256), an EC P-256 key (ES256) or an Ed25519/Ed448 key (EdDSA)"
        )
    assert isinstance(
        key,
        rsa.RSAPublicKey
        | ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    )
    return key


def algorithms_for_key(key: PublicKey) -> tuple[str, ...]:
    return tuple(alg for alg in ASYMMETRIC_ALGORITHMS if key_fits(alg, key))


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
        if not any(key_fits(alg, key) for alg in ASYMMETRIC_ALGORITHMS):
            continue
        alg = item.get("alg")
        kid = item.get("kid")
        keys.append(
            (kid if isinstance(kid, str) else None, alg if isinstance(alg, str) else None, key)
        )
    if not keys:
        raise ValueError("the key set holds no usable public signing key")
    return keys


# -- the generated secret ----------------------------------------------------------------------


def load_or_create_secret(settings: Settings) -> bytes:
    """The HS256 secret: ``SCOREBOARD_JWT_SECRET`` if set, else one generated once and kept in
    the data folder with mode 0600, so ``serve`` and ``token`` agree without any set-up.

    ``ValueError`` (one line naming the file, and the fix) for a secret file that cannot be
    used: unreadable, too short, or open to group or others. The last is refused as ssh refuses
    such a private key, rather than tightened in silence: whoever could read the file can sign
    any user's tokens, whoever could write it chose the secret, and the operator must know."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value().encode()
    path = settings.data_dir / _SECRET_FILE
    try:
        try:
            secret = _read_secret(path)
        except FileNotFoundError:
            secret = _create_secret(path)
    except OSError as exc:
        raise ValueError(f"the secret file {path}: {exc.strerror or exc}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the secret in {path} is shorter than {MIN_SECRET_BYTES} bytes: delete the file to "
            "have a new one generated, or set SCOREBOARD_JWT_SECRET"
        )
    return secret


def _read_secret(path: Path) -> bytes:
    with path.open("rb") as f:
        # The mode of the file opened, not of the name: nothing can swap it in between.
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if os.name == "posix" and mode & 0o077:
            raise ValueError(
                f"the secret file {path} has mode {mode:04o}, open to group or others; "
                f"make it private to its owner: chmod 600 {shlex.quote(str(path))}"
            )
        return f.read().strip()


def _create_secret(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return _read_secret(path)
    with os.fdopen(fd, "wb") as f:
        f.write(secret + b"\n")
    log.warning(
        "SCOREBOARD_JWT_SECRET is not set: generated a random secret and stored it in %s "
        "(mode 0600); set SCOREBOARD_JWT_SECRET to choose your own",
        path,
    )
    return secret


# -- verification ------------------------------------------------------------------------------


class TokenVerifier:
    """Verifies tokens against the configured keys and allow-list (see the module docstring)."""

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        public_key: PublicKey | None = None,
        jwks: JwksKeys | None = None,
        algorithms: Sequence[str] = ALGORITHMS,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 0.0,
        max_ttl: float = 86_400.0,
    ) -> None:
        unknown = set(algorithms) - set(SUPPORTED_ALGORITHMS)
        if unknown or not algorithms:
            raise ValueError(f"algorithms must be some of {', '.join(SUPPORTED_ALGORITHMS)}")
        if "HS256" in algorithms and secret is None:
            raise ValueError("HS256 needs a secret")
        if set(algorithms) & set(ASYMMETRIC_ALGORITHMS) and public_key is None and jwks is None:
            raise ValueError(f"{', '.join(algorithms)} need a public key or a JWKS URL")
        self._secret = secret
        self._public_key = public_key
        self._jwks = jwks
        self._algorithms = frozenset(algorithms)
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway
        self._max_ttl = max_ttl
        self._cache: dict[str, Identity] = {}

    @property
    def algorithms(self) -> frozenset[str]:
        return self._algorithms

    async def verify(self, token: str) -> Identity:
        """The identity a token proves, or ``Unauthorized`` (whose message never quotes it).
        ``Unavailable`` when the keys must be fetched and cannot be."""
        cached = self._cache.get(token)
        now = time.time()
        if cached is not None:
            if cached.expires_at > now:
                return cached
            del self._cache[token]
        identity = await self._decode(token)
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
        exp = claims["exp"]
        if not isinstance(sub, str):
            raise Unauthorized("the token's 'sub' must be a string", code="token_invalid")
        if type(exp) not in (int, float):  # PyJWT also takes "exp": "123"; we do not
            raise Unauthorized("the token's 'exp' must be a number", code="token_invalid")
        if exp > time.time() + self._max_ttl + self._leeway:
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
        return claims


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
    return Grant(delta=delta, action_id=action)


def _is_storable_name(name: object) -> bool:
    if not isinstance(name, str) or not name.isprintable():
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which no database column can hold
        return False
    return True


def verifier_from_settings(settings: Settings) -> TokenVerifier:
    """The verifier the settings describe. ``ValueError`` (one line) for a key that cannot be
    used; the JWKS URL is not fetched here but when the first token needs it."""
    algorithms = settings.token_algorithms
    public_key = load_public_key(settings.jwt_public_key) if settings.jwt_public_key else None
    if public_key is not None:
        fitting = algorithms_for_key(public_key)
        if settings.jwt_algorithms is None:  # derived: the algorithm of the key's kind
            algorithms = fitting
        misfits = sorted(set(algorithms) - set(fitting) - {"HS256"})
        if misfits:
            raise ValueError(
                f"SCOREBOARD_JWT_PUBLIC_KEY: the key does not fit {', '.join(misfits)}"
            )
    jwks = JwksKeys(settings.jwks_url) if settings.jwks_url else None
    secret = load_or_create_secret(settings) if "HS256" in algorithms else None
    return TokenVerifier(
        secret,
        public_key=public_key,
        jwks=jwks,
        algorithms=algorithms,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway=settings.jwt_leeway,
        max_ttl=settings.jwt_max_ttl,
    )


# -- minting -----------------------------------------------------------------------------------


def mint(
    secret: bytes,
    user_id: str,
    *,
    ttl: int = 3600,
    name: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
    grant: Grant | None = None,
) -> str:
    """A signed HS256 token for ``user_id`` (the ``token`` command, tests and benchmarks); with
    ``grant``, a score grant (header ``typ`` :data:`GRANT_TYPE`, claims ``delta`` and ``act``)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl}
    headers: dict[str, Any] | None = None
    if name:
        claims["name"] = name
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    if grant is not None:
        claims["delta"] = grant.delta
        claims["act"] = grant.action_id
        headers = {"typ": GRANT_TYPE}
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)
