"""Settings are validated once, at start: what is refused, and the one-line description of why."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from scoreboard.settings import Settings, describe_error


@pytest.fixture(autouse=True)
def _no_scoreboard_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SCOREBOARD_") and name != "SCOREBOARD_TEST_TIMEOUT_FACTOR":
            monkeypatch.delenv(name)


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def refusal(**values: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        make(**values)
    return describe_error(caught.value)


def test_the_defaults() -> None:
    settings = make()
    assert settings.database_url == "sqlite:///./data/scoreboard.db"
    assert settings.jwt_secret is None
    assert (settings.min_delta, settings.max_delta) == (1, 1000)
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.log_format == "text"
    assert settings.max_body == 16 * 1024
    assert settings.jwt_audience is None
    assert settings.jwt_issuer is None


# -- the secret --------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["x" * 31, "short", "é" * 15 + "a"])
def test_a_secret_under_32_bytes_is_refused(secret: str) -> None:
    line = refusal(jwt_secret=secret)
    assert "SCOREBOARD_JWT_SECRET" in line
    assert "32" in line
    assert secret not in line


@pytest.mark.parametrize("secret", ["x" * 32, "é" * 16])
def test_a_secret_of_32_bytes_is_enough(secret: str) -> None:
    settings = make(jwt_secret=secret)
    assert settings.jwt_secret is not None
    assert settings.jwt_secret.get_secret_value() == secret
    assert secret not in repr(settings)


# -- the audience with an identity provider's keys ----------------------------------------------

JWKS = "https://login.example/.well-known/jwks.json"


def _public_keys(kind: str, folder: Path) -> dict[str, Any]:
    if kind == "jwks":
        return {"jwks_url": JWKS}
    if kind == "jwks-next-to-a-secret":
        return {"jwks_url": JWKS, "jwt_algorithms": "HS256,RS256", "jwt_secret": "s" * 32}
    pem = folder / "key.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\n")  # read only when the verifier is built
    return {"jwt_public_key": pem}


@pytest.mark.parametrize("kind", ["jwks", "public-key", "jwks-next-to-a-secret"])
@pytest.mark.parametrize("audience", [None, ""], ids=["unset", "empty"])
def test_an_identity_providers_keys_without_an_audience_are_refused(
    tmp_path: Path, kind: str, audience: str | None
) -> None:
    """Its keys sign the tokens of all its applications: without ``aud`` checked, a token
    minted for any of them would pass here (RFC 8725, 3.9)."""
    values = _public_keys(kind, tmp_path)
    if audience is not None:
        values["jwt_audience"] = audience
    line = refusal(**values)
    assert "SCOREBOARD_JWT_AUDIENCE" in line
    assert "SCOREBOARD_JWKS_URL" in line
    assert "SCOREBOARD_JWT_PUBLIC_KEY" in line
    assert "any other application" in line
    assert "\n" not in line


@pytest.mark.parametrize("kind", ["jwks", "public-key", "jwks-next-to-a-secret"])
def test_an_identity_providers_keys_with_an_audience_are_accepted(
    tmp_path: Path, kind: str
) -> None:
    settings = make(**_public_keys(kind, tmp_path), jwt_audience="scoreboard")
    assert settings.jwt_audience == "scoreboard"


def test_our_own_secret_needs_no_audience() -> None:
    """Tokens signed with the service's own secret were minted for it alone."""
    settings = make(jwt_secret="s" * 32)
    assert settings.token_algorithms == ("HS256",)
    assert settings.jwt_audience is None


# -- the database URL --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        "sqlite:///",
        "sqlite://relative.db",
        "sqlite:relative.db",
        "mysql://root@localhost/db",
        "postgres://user@host:5432/db",
        "http://localhost/db",
        "./data/scoreboard.db",
    ],
)
def test_a_bad_database_url_is_refused(url: str) -> None:
    line = refusal(database_url=url)
    assert line.startswith("SCOREBOARD_DATABASE_URL: ")
    assert "sqlite:///PATH" in line


@pytest.mark.parametrize(
    "url",
    ["sqlite:///./data/x.db", "sqlite:////var/lib/scoreboard.db", "postgresql://u@db:5432/sb"],
)
def test_good_database_urls(url: str) -> None:
    settings = make(database_url=url)
    assert settings.database_url == url
    assert settings.is_sqlite == url.startswith("sqlite:///")


# -- the delta range ---------------------------------------------------------------------------


def test_min_above_max_is_refused() -> None:
    line = refusal(min_delta=10, max_delta=5)
    assert "SCOREBOARD_MIN_DELTA" in line
    assert "SCOREBOARD_MAX_DELTA" in line


def test_a_range_holding_only_zero_is_refused() -> None:
    assert refusal(min_delta=0, max_delta=0)


@pytest.mark.parametrize(("low", "high"), [(5, 5), (-10, -1), (-5, 5), (0, 1)])
def test_ranges_with_a_non_zero_value_are_accepted(low: int, high: int) -> None:
    settings = make(min_delta=low, max_delta=high)
    assert (settings.min_delta, settings.max_delta) == (low, high)


# -- describe_error ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"jwt_secret": "short"}, id="secret"),
        pytest.param({"min_delta": 3, "max_delta": 1}, id="range"),
        pytest.param({"port": 70000}, id="port"),
        pytest.param({"min_delta": "many"}, id="not-an-int"),
        pytest.param({"log_format": "xml"}, id="log-format"),
        pytest.param({"database_url": "mysql://x", "jwt_secret": "s", "port": -1}, id="three"),
    ],
)
def test_describe_error_is_one_line(values: dict[str, Any]) -> None:
    line = refusal(**values)
    assert line
    assert "\n" not in line
    assert "Traceback" not in line
    assert "Value error," not in line
    assert "https://errors.pydantic.dev" not in line


def test_describe_error_names_every_bad_variable() -> None:
    line = refusal(database_url="mysql://x", port=70000, log_format="xml")
    for name in ("SCOREBOARD_DATABASE_URL", "SCOREBOARD_PORT", "SCOREBOARD_LOG_FORMAT"):
        assert name in line
    assert line.count("; ") == 2


# -- sources -----------------------------------------------------------------------------------


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCOREBOARD_MIN_DELTA", "-3")
    monkeypatch.setenv("SCOREBOARD_JWT_AUDIENCE", "board")
    settings = make()
    assert settings.min_delta == -3
    assert settings.jwt_audience == "board"
    assert make(min_delta=2).min_delta == 2  # keyword arguments win


def test_a_dotenv_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SCOREBOARD_MAX_DELTA=77\nSCOREBOARD_LOG_FORMAT=json\n")
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.max_delta == 77
    assert settings.log_format == "json"


def test_empty_audience_and_issuer_mean_unset() -> None:
    settings = make(jwt_audience="", jwt_issuer="")
    assert settings.jwt_audience is None
    assert settings.jwt_issuer is None


def test_the_postgresql_pool_size_is_the_stores_and_is_bounded() -> None:
    from scoreboard.adapters.postgres_store import PostgresScoreStore
    from scoreboard.bootstrap import store_of

    settings = Settings(database_url="postgresql://u@db:5432/s", database_pool_size=5)
    store = store_of(settings)
    assert isinstance(store, PostgresScoreStore)
    assert (store.min_size, store.max_size) == (2, 5)
    assert refusal(database_pool_size=0).startswith("SCOREBOARD_DATABASE_POOL_SIZE: ")
