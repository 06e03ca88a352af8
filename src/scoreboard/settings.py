"""All configuration, in one class: environment variables ``SCOREBOARD_*`` and a ``.env`` file.

Validated once at start; everything else receives a ``Settings`` instance. Tests build it with
keyword arguments instead of patching the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    min_delta: int = 1
    max_delta: int = 1000
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
