"""All configuration, in one class: environment variables ``SCOREBOARD_*`` and a ``.env`` file.

Validated once at start; everything else receives a ``Settings`` instance. Tests build it with
keyword arguments instead of patching the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scoreboard.auth import algorithms
from scoreboard.model import DELTA_LIMIT

MIN_SECRET_BYTES = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SCOREBOARD_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    database_url: str = "sqlite:///./data/scoreboard.db"
    database_pool_size: int = Field(default=16, ge=1, le=1000)
    """PostgreSQL: connections this process holds at most (plus one for the bus's LISTEN).
    Workers times this must stay under the server's ``max_connections``."""
    redis_url: str | None = None
    """``redis://HOST:PORT/N`` or ``rediss://...``: the shared rank index and bus (scaled mode)."""
    redis_prefix: str = Field(default="scoreboard:", min_length=1, max_length=64)
    """Prefix of every Redis key and channel, so several deployments can share one Redis."""
    data_dir: Path = Path("./data")
    """Where a generated JWT secret is kept (mode 0600)."""
    jwt_secret: SecretStr | None = None
    jwt_audience: str | None = None
    """The ``aud`` every token must carry; required with a public key or JWKS URL."""
    jwt_issuer: str | None = None
    # -- tokens and authorization (README, "Configuration") ----------------------------------
    auth_mode: Literal["user", "grant"] = "user"
    """``user``: the token proves who the user is; ``grant``: the token is a score grant."""
    jwt_algorithms: str | None = None
    """Comma-separated allow-list of HS256, RS256, ES256, EdDSA; unset: derived from the keys."""
    jwt_public_key: Path | None = None
    """PEM file of the public key that verifies RS256/ES256/EdDSA tokens."""
    jwks_url: str | None = None
    """http(s) URL of a JWKS document whose public keys verify RS256/ES256/EdDSA tokens."""
    jwt_leeway: float = Field(default=0.0, ge=0, le=30)
    """Seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``."""
    jwt_max_ttl: int = Field(default=86_400, gt=0)
    """A token whose ``exp`` lies further ahead than this many seconds is refused."""
    min_delta: int = Field(default=1, ge=-DELTA_LIMIT, le=DELTA_LIMIT)
    max_delta: int = Field(default=1000, ge=-DELTA_LIMIT, le=DELTA_LIMIT)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    ws_send_timeout: float = Field(default=10.0, gt=0)
    """Seconds a socket may stay unwritable before it is closed."""
    ws_max_message: int = Field(default=4096, ge=128)
    """Largest client frame, in bytes; a larger one closes the socket with 1009."""
    ws_ping_interval: float = Field(default=20.0, gt=0)
    max_body: int = Field(default=16 * 1024, ge=1024)
    # -- limits (docs/operations.md); an empty value turns each one off -----------------------
    rate_limit_user: str | None = "60/minute"
    """Updates per user, in the ``limits`` notation (``60/minute``, ``5/second``)."""
    rate_limit_export: str | None = "10/minute"
    """Exports (``/api/boards/{board}/export``) per client address, same notation."""
    rate_limit_ip: str | None = "600/minute"
    """Updates per client address (see ``trusted_proxies``), same notation."""
    velocity_limit: int | None = Field(default=10_000, gt=0)
    """Most points one user may gain in any 60 s (a moving window; ``web.limits``)."""
    trusted_proxies: str = ""
    """Comma-separated IPs or CIDRs whose ``X-Forwarded-For`` is believed (default: none)."""
    # -- operators (docs/operations.md, "Moderation") ---------------------------------------
    admin_allowed_ips: str = ""
    """Comma-separated IPs or CIDRs that may call ``/api/admin``; empty: any (the key decides).
    Others get 403 before their key is looked at."""
    admin_auth_limit: str | None = "10/minute"
    """Failed admin authentications per client address; over it, 429."""
    erasure_key: SecretStr | None = None
    """The key of the hash that stands for an erased user in the audit; unset: generated once
    in the data folder (``erasure_key``, mode 0600). Every process must share it."""
    consistency_sample: int = Field(default=6, ge=0, le=600)
    """Users a minute whose standings and rank index entry ``serve`` checks in the background
    against the events (``scoreboard_consistency_errors_total``, docs/operations.md, "Verify
    and repair"); 0 turns the check off."""
    checkpoint_interval: float = Field(default=3600.0, ge=1, le=86_400)
    """Seconds between the keeper's checkpoints of each board's current period, from which a
    read of the past (``at=``) replays (docs/design.md, "Reading the past"): a read replays at
    most about this span of events."""
    checkpoint_rows: int = Field(default=1000, ge=20, le=100_000)
    """Rows (the first in rank order) each checkpoint keeps per board. More rows cost storage
    and a little time per read, and leave fewer users after a checkpoint to recount: those
    whose score at it was unknown (below the last row) and whose later events could lift them
    into the ranks asked."""
    # -- webhooks (docs/webhooks.md) ----------------------------------------------------------
    webhook_allow_hosts: str = ""
    """Comma-separated hosts a webhook may point at over plain http and whatever they resolve
    to (private addresses included); every other URL must be https to a public address."""
    webhook_retry_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    """How long a failing delivery is retried (exponential backoff with jitter); an endpoint
    failing for all of it is disabled."""
    webhook_retry_base: float = Field(default=5.0, gt=0, le=3600)
    """Seconds before the first retry; doubled each time, at most an hour."""
    webhook_lease: float = Field(default=30.0, gt=0, le=3600)
    """Seconds a process holds a delivery it is sending; one held longer (the process died)
    is sent again by any process."""
    webhook_poll: float = Field(default=1.0, gt=0, le=60)
    """Seconds between looks at the outbox for due deliveries (one queued here is sent at
    once; this bounds the wait for retries and for deliveries queued by other processes)."""
    allowed_origins: str = ""
    """Comma-separated origins for WebSocket and CORS; empty: any origin (the board is public)."""
    ws_max_connections: int | None = Field(default=10_000, gt=0)
    """Open sockets per process; over it a new socket is refused before accept."""
    ws_max_per_address: int | None = Field(default=32, gt=0)
    """Open sockets per client address; over it a new socket is refused before accept."""
    ws_max_frames_per_second: int | None = Field(default=10, gt=0)
    """Client frames a socket may send in one second (the channel is push-only)."""
    header_timeout: float = Field(default=10.0, gt=0)
    """Seconds from connecting (or from a request's first byte) to the end of its headers."""
    body_timeout: float = Field(default=10.0, gt=0)
    """Seconds to receive a whole request body."""
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    """Request line plus headers; a larger request is refused with 431."""
    boards: Path | None = None
    """TOML file declaring the metrics and boards; unset: one board ``main``, the all-time sum
    of ``points`` (``scoreboard.boards``)."""
    default_board: str = Field(default="main", pattern=r"^[a-z0-9_-]{1,64}$")
    """The board behind the seed's endpoints (``/api/scores/...``, ``/ws/scoreboard``)."""
    allow_untested_server: bool = False
    """Start on an uvicorn outside the tested range, on its stock protocols (``server.run``)."""

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if value.startswith("sqlite:///") and len(value) > len("sqlite:///"):
            return value
        if value.startswith("postgresql://"):
            return value
        raise ValueError("must be sqlite:///PATH or postgresql://USER@HOST:PORT/DB")

    @field_validator("redis_url", mode="before")
    @classmethod
    def _redis_scheme(cls, value: object) -> object:
        if value is None or value == "":
            return None
        if isinstance(value, str) and value.startswith(("redis://", "rediss://")):
            return value
        raise ValueError("must be redis://HOST:PORT/N or rediss://HOST:PORT/N")

    @field_validator("jwt_secret", "erasure_key")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @field_validator(
        "rate_limit_user",
        "rate_limit_ip",
        "rate_limit_export",
        "admin_auth_limit",
        "velocity_limit",
        "ws_max_connections",
        "ws_max_per_address",
        "ws_max_frames_per_second",
        mode="before",
    )
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("rate_limit_user", "rate_limit_ip", "rate_limit_export", "admin_auth_limit")
    @classmethod
    def _rate_notation(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import limits

        try:
            limits.parse(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate such as '60/minute' or '5/second'") from None
        return value

    @field_validator("trusted_proxies", "admin_allowed_ips")
    @classmethod
    def _networks(cls, value: str) -> str:
        import ipaddress

        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR") from None
        return value

    @field_validator(
        "jwt_audience",
        "jwt_issuer",
        "jwt_algorithms",
        "jwt_public_key",
        "jwks_url",
        "boards",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("jwt_algorithms")
    @classmethod
    def _known_algorithms(cls, value: str | None) -> str | None:
        if value is None:
            return None
        names = [part.strip() for part in value.split(",") if part.strip()]
        known = algorithms.SUPPORTED
        for name in names:
            if name not in known:  # exact: "none", "hs256" or "HS384" are refused
                raise ValueError(f"{name!r} is not one of {', '.join(known)}")
        if not names:
            raise ValueError(f"name at least one of {', '.join(known)}")
        return ",".join(dict.fromkeys(names))

    @field_validator("jwt_public_key")
    @classmethod
    def _readable_key(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                with value.open("rb"):
                    pass
            except OSError as exc:
                raise ValueError(f"cannot read {value}: {exc.strerror}") from None
        return value

    @field_validator("jwks_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _token_keys(self) -> Self:
        if self.jwt_public_key is not None and self.jwks_url is not None:
            raise ValueError("set SCOREBOARD_JWT_PUBLIC_KEY or SCOREBOARD_JWKS_URL, not both")
        algorithms = self.token_algorithms
        has_public = self.jwt_public_key is not None or self.jwks_url is not None
        if set(algorithms) - {"HS256"} and not has_public:
            raise ValueError(
                "SCOREBOARD_JWT_ALGORITHMS: RS256, ES256 and EdDSA need SCOREBOARD_JWT_PUBLIC_KEY "
                "or SCOREBOARD_JWKS_URL"
            )
        if "HS256" in algorithms and has_public and self.jwt_secret is None:
            raise ValueError(
                "SCOREBOARD_JWT_ALGORITHMS: HS256 next to a public key needs SCOREBOARD_JWT_SECRET"
            )
        if has_public and self.jwt_audience is None:
            # An identity provider signs tokens for all its applications with the same keys; only
            # the audience tells ours apart (RFC 8725, 3.9). Our own secret signs for us alone.
            raise ValueError(
                "SCOREBOARD_JWT_AUDIENCE: must be set with SCOREBOARD_JWT_PUBLIC_KEY or "
                "SCOREBOARD_JWKS_URL, to the audience your identity provider puts in this "
                "service's tokens; without it, tokens it issued for any other application "
                "would be accepted"
            )
        return self

    @property
    def token_algorithms(self) -> tuple[str, ...]:
        """The allow-list: as configured, else HS256 alone without a public key, and the
        asymmetric ones without HS256 with one (a secret is then not used for tokens)."""
        if self.jwt_algorithms is not None:
            return tuple(self.jwt_algorithms.split(","))
        if self.jwt_public_key is not None or self.jwks_url is not None:
            return algorithms.ASYMMETRIC
        return algorithms.DEFAULT

    @model_validator(mode="after")
    def _delta_range(self) -> Self:
        if self.min_delta > self.max_delta:
            raise ValueError("SCOREBOARD_MIN_DELTA must not be greater than SCOREBOARD_MAX_DELTA")
        if self.min_delta == 0 == self.max_delta:
            raise ValueError("the delta range must contain a non-zero value")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite:///")

    @property
    def is_scaled(self) -> bool:
        """PostgreSQL and Redis: the mode in which any number of processes act as one."""
        return not self.is_sqlite and self.redis_url is not None


def describe_error(error: ValidationError) -> str:
    """One line naming each bad variable, for the command line (never a traceback)."""
    parts = []
    for item in error.errors():
        loc = item.get("loc") or ()
        name = f"SCOREBOARD_{str(loc[0]).upper()}" if loc else "configuration"
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{name}: {message}")
    return "; ".join(parts)
