"""Earlier releases, run as they were released: a release's ``src/`` taken from this repository's
own history and served by ``python -m scoreboard serve`` from a temporary folder.

A migration test needs what the API answered *before* the upgrade. Asking the previous release's
own code, at test time, is the honest source: the database is built by its migrations and its
store (real rows, exactly as it wrote them) and the answers are its answers, not a recording of
them that could drift from the code or from the data. The cost is that the tests need the
repository's history: a fresh ``git clone`` has it (CI's ``.ci/run`` works on one); a shallow
clone does not, and then the test skips with the reason, or fails with ``CI=true`` (like a
missing service).

An earlier release shares this checkout's dependencies (since 57ac4ca ``pyproject.toml`` only
gained ``tzdata``), so it runs in the same virtual environment: ``PYTHONPATH`` puts its ``src/``
before the installed (editable) package. Its command line (``boards rollover``, say) runs the
same way: :meth:`ServerProcess.run` of the server :meth:`Release.server` returns.

The shape of a migration test: :meth:`Release.extract` the release, :meth:`Release.serving` it
on an empty database (:func:`tests.support.migrations.empty_database`) and post real data to it,
stop it; then :func:`tests.support.migrations.copy_database` for each test and start this
checkout on the copy (``serve`` upgrades it in place, as an operator's deploy does).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.support import services
from tests.support.server import ServerProcess

REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Release:
    """A commit of this repository that was released, and its schema head."""

    commit: str
    head_revision: str
    """The newest migration the release ships: its ``serve`` leaves a database there."""

    def extract(self, dest: Path) -> Path:
        """The release's ``src/`` folder, written under ``dest``."""
        try:
            found = subprocess.run(
                ["git", "-C", str(REPOSITORY), "cat-file", "-e", f"{self.commit}^{{commit}}"],
                capture_output=True,
                check=False,
            )
        except FileNotFoundError:  # no git at all
            found = None
        if found is None or found.returncode != 0:
            services.unavailable(
                f"commit {self.commit} (an earlier release) is not in this clone's git history; "
                "a shallow clone? (git fetch --unshallow)"
            )
        archive = subprocess.run(
            ["git", "-C", str(REPOSITORY), "archive", "--format=tar", self.commit, "src"],
            capture_output=True,
            check=True,
        )
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(dest, filter="data")
        return dest / "src"

    def server(
        self, src: Path, data_dir: Path, env: Mapping[str, str] | None = None
    ) -> ServerProcess:
        """A ``ServerProcess`` running the release found in ``src`` (see :meth:`extract`); its
        ``run`` runs the release's command line on the same settings."""
        path = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH", "")) if p)
        return ServerProcess(data_dir, {**(env or {}), "PYTHONPATH": path})

    @contextlib.contextmanager
    def serving(
        self, src: Path, data_dir: Path, env: Mapping[str, str] | None = None
    ) -> Iterator[ServerProcess]:
        """The release serving (its ``serve`` migrates the database to :attr:`head_revision`
        first), stopped on exit."""
        proc = self.server(src, data_dir, env).start()
        try:
            yield proc
        finally:
            proc.stop()


BEFORE_BOARDS = Release("57ac4ca", "0003")
"""The last commit on main before many boards (``Merge edge-openapi``): ``users.score`` is the
one board. The release migration 0004 upgrades from."""

BEFORE_MODERATION = Release("3795253", "0004")
"""The last commit before moderation (``Boards in scaled mode, end to end``): many boards,
periods and seasons, no admin API. The release migration 0005 upgrades from."""

BEFORE_CHECKPOINTS = Release("4d574db", "0006")
"""The last commit before checkpoints (``Webhook test waits for the courier``): webhooks, every
read of the past recounted from the ledger. The release migration 0007 upgrades from."""
