"""``auth.secret``: the configured secret, or one generated once, private to its owner."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from scoreboard.auth.secret import load_or_create_secret
from scoreboard.settings import Settings
from tests.support.server import SECRET

KEY = SECRET.encode()
OTHER = "another-secret-that-is-long-enough-0123456789"


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        data_dir=tmp_path / "data",
        **values,
    )


def test_a_configured_secret_is_used_as_is(tmp_path: Path) -> None:
    assert load_or_create_secret(_settings(tmp_path, jwt_secret=SECRET)) == KEY
    assert not (tmp_path / "data").exists()


def test_a_secret_is_generated_once_private_and_reused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    first = load_or_create_secret(settings)
    files = list((tmp_path / "data").iterdir())
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert len(first) >= 32
    assert "SCOREBOARD_JWT_SECRET" in caplog.text
    assert first.decode() not in caplog.text
    assert load_or_create_secret(settings) == first


def test_a_short_secret_in_the_data_folder_is_refused(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    load_or_create_secret(settings)
    (secret_file,) = (tmp_path / "data").iterdir()
    secret_file.write_bytes(b"tiny-s3cret\n")
    with pytest.raises(ValueError, match="shorter") as caught:
        load_or_create_secret(settings)
    assert str(secret_file) in str(caught.value)
    assert "tiny-s3cret" not in str(caught.value)


def _secret_file(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "data" / "jwt_secret"
    path.parent.mkdir()
    path.write_bytes(KEY + b"\n")
    path.chmod(mode)
    return path


@pytest.mark.parametrize(
    "mode",
    [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666, 0o700 | 0o070],
    ids=lambda m: f"{m:04o}",
)
def test_a_secret_file_open_to_group_or_others_is_refused_as_ssh_does(
    tmp_path: Path, mode: int
) -> None:
    """Anyone who can read it can sign tokens for any user; anyone who can write it can choose
    the secret. Refused, not fixed silently: the operator should learn that it was exposed."""
    path = _secret_file(tmp_path, mode)
    with pytest.raises(ValueError, match="chmod 600") as caught:
        load_or_create_secret(_settings(tmp_path))
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    assert f"{mode:04o}" in message
    assert f"chmod 600 {path}" in message
    assert SECRET not in message
    assert stat.S_IMODE(path.stat().st_mode) == mode  # left as it was
    assert path.read_bytes() == KEY + b"\n"


@pytest.mark.parametrize("mode", [0o600, 0o400], ids=lambda m: f"{m:04o}")
def test_a_secret_file_private_to_its_owner_is_used(tmp_path: Path, mode: int) -> None:
    _secret_file(tmp_path, mode)
    assert load_or_create_secret(_settings(tmp_path)) == KEY


def test_a_secret_path_that_cannot_be_read_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "data" / "jwt_secret").mkdir(parents=True)
    with pytest.raises(ValueError, match="jwt_secret") as caught:
        load_or_create_secret(_settings(tmp_path))
    assert "\n" not in str(caught.value)


def test_a_secret_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the data folder should be")
    with pytest.raises(ValueError, match="data") as caught:
        load_or_create_secret(_settings(tmp_path))
    assert "\n" not in str(caught.value)
