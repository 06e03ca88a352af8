"""Print a pip constraints file that pins every dependency in pyproject.toml to its lower bound.

pip has no "lowest" resolution: ``make test-lowest`` installs the package with this file as
constraints, so each direct dependency comes at the oldest version the package metadata allows
(what a site owner may already have installed), while the dependencies' own dependencies resolve
as pip would for them. ``--with NAME`` adds NAME at the version the lock file pins (the test
tools, which are not what is being tested). Standard library only: it runs before any
virtualenv exists.

    python3 tools/lowest_constraints.py [--pyproject pyproject.toml] [--lock constraints.txt]
        [--with pytest ...]
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

# name[extras] specifiers ; marker
_REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>[^;]*)(?:;(?P<marker>.*))?$"
)
_LOWER = re.compile(r">=\s*([^,\s]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lowest(requirements: list[str]) -> list[str]:
    """``name==lower`` (with the requirement's marker) for each requirement; a requirement
    without a ``>=`` bound is an error: it could not be tested at its lowest."""
    lines = []
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        if match is None:
            raise ValueError(f"cannot read the requirement {requirement!r}")
        bound = _LOWER.search(match["spec"])
        if bound is None:
            raise ValueError(f"{requirement!r} has no lower bound (>=)")
        line = f"{match['name']}=={bound[1]}"  # extras dropped: pip refuses them in constraints
        if match["marker"]:
            line += f"; {match['marker'].strip()}"
        lines.append(line)
    return lines


def pinned(lock: Path, names: list[str]) -> list[str]:
    pins = {}
    for line in lock.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep:
            pins[canonical(name)] = f"{name}=={version}"
    missing = [n for n in names if canonical(n) not in pins]
    if missing:
        raise ValueError(f"not pinned in {lock}: {', '.join(missing)}")
    return [pins[canonical(n)] for n in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyproject", type=Path, default=Path("pyproject.toml"))
    parser.add_argument("--lock", type=Path, default=Path("constraints.txt"))
    parser.add_argument("--with", dest="tools", action="append", default=[], metavar="NAME")
    args = parser.parse_args(argv)
    project = tomllib.loads(args.pyproject.read_text())["project"]
    try:
        lines = lowest(project["dependencies"]) + pinned(args.lock, args.tools)
    except ValueError as exc:
        sys.stderr.write(f"lowest_constraints: {exc}\n")
        return 2
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
