"""``deploy/scoreboard.env``, the workers' settings file, read as the service reads settings.

Settings ignore unknown variables, so a misspelt name in the example would be ignored in
silence on every machine that copied it: every name, commented-out ones included, must be a
setting. Filled in as docs/deploy.md says (the two secrets, the password), it must be valid
scaled-mode settings that trust nginx's address.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from scoreboard.settings import Settings, describe_error

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "scoreboard.env"
LINE = re.compile(r"^#?(SCOREBOARD_[A-Z_]+)=(.*)$")


def entries(*, commented: bool) -> dict[str, str]:
    found = {}
    for line in EXAMPLE.read_text().splitlines():
        match = LINE.match(line)
        if match and (commented or not line.startswith("#")):
            found[match.group(1)] = match.group(2)
    return found


def test_every_variable_named_is_a_setting() -> None:
    names = set(entries(commented=True))
    known = {f"SCOREBOARD_{field.upper()}" for field in Settings.model_fields}
    assert names, "no SCOREBOARD_ variable found"
    assert names <= known, f"not settings: {sorted(names - known)}"


def settings(values: dict[str, str]) -> Settings:
    fields = {name.removeprefix("SCOREBOARD_").lower(): value for name, value in values.items()}
    return Settings(_env_file=None, **fields)  # type: ignore[call-arg]


def test_as_shipped_a_worker_refuses_to_start_naming_the_empty_secrets() -> None:
    with pytest.raises(ValidationError) as refused:
        settings(entries(commented=False))
    line = describe_error(refused.value)
    assert "SCOREBOARD_JWT_SECRET" in line
    assert "SCOREBOARD_ERASURE_KEY" in line


def test_filled_in_it_is_scaled_mode_behind_nginx() -> None:
    values = entries(commented=False)
    values["SCOREBOARD_JWT_SECRET"] = "j" * 64
    values["SCOREBOARD_ERASURE_KEY"] = "e" * 64
    filled = settings(values)
    assert filled.is_scaled
    assert filled.host == "127.0.0.1"
    assert filled.trusted_proxies == "127.0.0.1"
