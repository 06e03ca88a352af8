"""``tools/lowest_constraints.py`` (``make test-lowest``), and the rule it relies on: every
dependency's lower bound in pyproject.toml is the version the lock file pins."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lowest", REPO / "tools" / "lowest_constraints.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_requirement_becomes_its_lower_bound_with_its_marker() -> None:
    lines = tool().lowest(
        [
            "uvicorn>=0.54.0,<0.55",
            "pyjwt[crypto]>=2.15.1,<3",
            "uvloop>=0.23.0,<1; sys_platform != 'win32'",
        ]
    )
    assert lines == [
        "uvicorn==0.54.0",
        "pyjwt==2.15.1",  # no extras: pip refuses them in a constraints file
        "uvloop==0.23.0; sys_platform != 'win32'",
    ]


def test_a_requirement_without_a_lower_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="no lower bound"):
        tool().lowest(["fastapi<1"])


def test_every_lower_bound_is_the_locks_pin() -> None:
    module = tool()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lowest = module.lowest(project["dependencies"])
    lock = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        lock[module.canonical(name)] = version
    for line in lowest:
        name, version = re.split(r"==|;", line)[:2]
        assert lock[module.canonical(name)] == version.strip(), line
