"""The previous release, run as it was released: its ``src/`` taken from this repository's own
history and served by ``python -m scoreboard serve`` from a temporary folder.

A migration test needs what the API answered *before* the upgrade. Asking the previous release's
own code, at test time, is the honest source: the database is built by its migrations and its
store (real rows, exactly as it wrote them) and the answers are its answers, not a recording of
them that could drift from the code or from the data. The cost is that the tests need the
repository's history: a fresh ``git clone`` has it (CI's ``.ci/run`` works on one); a shallow
clone does not, and then the test skips with the reason, or fails with ``CI=true`` (like a
missing service).

The previous release shares this checkout's dependencies (``pyproject.toml`` only gained
``tzdata``), so it runs in the same virtual environment: ``PYTHONPATH`` puts its ``src/``
before the installed (editable) package.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Mapping
from pathlib import Path

from tests.support import services
from tests.support.server import ServerProcess

COMMIT = "57ac4ca"
"""The last commit on main before many boards (``Merge edge-openapi``): schema head 0003."""
HEAD_REVISION = "0003"
"""The previous release's schema head (``users.score`` is the board)."""

REPOSITORY = Path(__file__).resolve().parents[2]


def extract(dest: Path) -> Path:
    """The previous release's ``src/`` folder, written under ``dest``."""
    try:
        found = subprocess.run(
            ["git", "-C", str(REPOSITORY), "cat-file", "-e", f"{COMMIT}^{{commit}}"],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:  # no git at all
        found = None
    if found is None or found.returncode != 0:
        services.unavailable(
            f"commit {COMMIT} (the previous release) is not in this clone's git history; "
            "a shallow clone? (git fetch --unshallow)"
        )
    archive = subprocess.run(
        ["git", "-C", str(REPOSITORY), "archive", "--format=tar", COMMIT, "src"],
        capture_output=True,
        check=True,
    )
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "src"


def server(src: Path, data_dir: Path, env: Mapping[str, str] | None = None) -> ServerProcess:
    """A ``ServerProcess`` running the previous release found in ``src`` (see :func:`extract`)."""
    path = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)
    return ServerProcess(data_dir, {**(env or {}), "PYTHONPATH": path})
