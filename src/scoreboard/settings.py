"""All configuration, in one class: environment variables ``SCOREBOARD_*`` and a ``.env`` file.

Validated once at start; everything else receives a ``Settings`` instance. Tests build it with
keyword arguments instead of patching the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    redis_url: str | None = None
    """``redis://HOST:PORT/N`` or ``rediss://...``: the shared rank index and bus (scaled mode)."""
    redis_prefix: str = Field(default="scoreboard:", min_length=1, max_length=64)
    """Prefix of every Redis key and channel, so several deployments can share one Redis."""
    data_dir: Path = Path("./data")
    """Where a generated JWT secret is kept (mode 0600)."""
    jwt_secret: SecretStr | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
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
    rate_limit_ip: str | None = "600/minute"
    """Updates per client address (see ``trusted_proxies``), same notation."""
    velocity_limit: int | None = Field(default=10_000, gt=0)
    """Most points one user may gain per minute."""
    trusted_proxies: str = ""
    """Comma-separated IPs or CIDRs whose ``X-Forwarded-For`` is believed (default: none)."""
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

    @field_validator("jwt_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes")
        return value

    @field_validator(
        "rate_limit_user",
        "rate_limit_ip",
        "velocity_limit",
        "ws_max_connections",
        "ws_max_per_address",
        "ws_max_frames_per_second",
        mode="before",
    )
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("rate_limit_user", "rate_limit_ip")
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

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        import ipaddress

        for item in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR") from None
        return value

    @field_validator("jwt_audience", "jwt_issuer", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

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
