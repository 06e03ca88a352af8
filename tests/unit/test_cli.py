"""The command line's pure helpers (the commands run as processes: tests/e2e/test_cli.py)."""

from __future__ import annotations

import pytest

from scoreboard import cli


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("postgresql://app:s3cret@db:5432/board", "postgresql://app:***@db:5432/board"),
        ("redis://:pa:ss@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://app@db/board", "postgresql://app@db/board"),
        ("sqlite:///./data/scoreboard.db", "sqlite:///./data/scoreboard.db"),
        (None, None),
    ],
)
def test_the_starting_line_never_carries_a_password(url: str | None, logged: str | None) -> None:
    assert cli._without_password(url) == logged


def test_version_is_the_packages_one_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``scoreboard --version`` prints ``scoreboard.__version__``, the one place the version is
    written: the installed metadata (pyproject.toml's dynamic version) reads the same."""
    from importlib.metadata import version

    import scoreboard

    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"scoreboard {scoreboard.__version__}\n"
    assert version("scoreboard") == scoreboard.__version__
