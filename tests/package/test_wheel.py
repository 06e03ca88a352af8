"""The package as a site owner gets it: ``python -m build`` (an sdist, then a wheel built from
that sdist, so the sdist is proved complete too), the wheel installed in a fresh virtualenv
outside the repository with the dependencies its metadata names, and ``scoreboard serve`` run
from an empty folder with nothing configured.

Slow (a build and an install): the sdist and wheel are built once for the module, and the
virtualenv made once. pip resolves from the wheel's metadata (the point: a missing dependency
fails here), with the lock file as constraints so that the versions are those ``make`` tests and
pip's cache serves them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import scoreboard
from tests.support.server import free_port
from tests.support.timing import scaled
from tests.support.tokens import token

REPO = Path(__file__).resolve().parents[2]
# What `serve` reads besides the code, as paths inside the package.
DATA_FILES = [
    "web/static/index.html",
    "web/static/board.js",
    "web/static/board.css",
    "web/static/admin.html",
    "web/static/docs.js",
    "web/static/favicon.svg",
    "migrations/env.py",
    "migrations/script.py.mako",
    "migrations/versions/0001_initial.py",
    "migrations/versions/0006_webhooks.py",
    "py.typed",
]


@dataclass(frozen=True)
class Dist:
    sdist: Path
    wheel: Path


@dataclass(frozen=True)
class Installed:
    venv: Path

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name


def clean_env() -> dict[str, str]:
    """The environment of a site owner's shell: nothing of this repository's or its settings."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SCOREBOARD_", "PYTHON", "VIRTUAL_ENV"))
    }


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    out = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
        capture_output=True,
        text=True,
        timeout=scaled(600),
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"python -m build: {time.monotonic() - started:.1f} s")
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Dist(sdist, wheel)


@pytest.fixture(scope="module")
def installed(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    venv = tmp_path_factory.mktemp("site") / "venv"
    assert REPO not in venv.parents
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=scaled(120))
    done = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(REPO / "constraints.txt"),
            str(dist.wheel),
        ],
        env=clean_env(),
        cwd=venv.parent,
        capture_output=True,
        text=True,
        timeout=scaled(600),
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"virtualenv and pip install of the wheel: {time.monotonic() - started:.1f} s")
    return Installed(venv)


def test_the_sdist_and_the_wheel_carry_what_serve_reads(dist: Dist) -> None:
    version = scoreboard.__version__
    assert dist.wheel.name == f"scoreboard-{version}-py3-none-any.whl"
    with zipfile.ZipFile(dist.wheel) as wheel:
        in_wheel = set(wheel.namelist())
        metadata = wheel.read(f"scoreboard-{version}.dist-info/METADATA").decode()
    with tarfile.open(dist.sdist) as sdist:
        in_sdist = {name.partition("/")[2] for name in sdist.getnames()}
    for path in DATA_FILES:
        assert f"scoreboard/{path}" in in_wheel, path
        assert f"src/scoreboard/{path}" in in_sdist, path
    assert not [name for name in in_wheel if name.startswith("tests/")]
    assert f"Version: {version}" in metadata
    requires = [
        Requirement(line.removeprefix("Requires-Dist:").strip())
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    ]
    uvicorn = next(r for r in requires if r.name == "uvicorn")
    assert uvicorn.specifier == SpecifierSet(">=0.54.0,<0.55")
    runtime = [r for r in requires if "extra ==" not in str(r.marker)]
    assert len(runtime) > 20
    assert all(r.specifier for r in runtime)  # every dependency with bounds (the dev tools: none)


def test_the_installed_wheel_serves_from_an_empty_folder(
    installed: Installed, tmp_path: Path
) -> None:
    here = tmp_path / "site"
    here.mkdir()
    env = clean_env()
    version = subprocess.run(
        [str(installed.bin("scoreboard")), "--version"],
        env=env,
        cwd=here,
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=True,
    )
    assert version.stdout.strip() == f"scoreboard {scoreboard.__version__}"
    where = subprocess.run(
        [str(installed.bin("python")), "-c", "import scoreboard; print(scoreboard.__file__)"],
        env=env,
        cwd=here,
        capture_output=True,
        text=True,
        timeout=scaled(60),
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(installed.venv)

    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(installed.bin("scoreboard")), "serve", "--port", str(port)],
        env=env,
        cwd=here,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base, tmp_path / "serve.log")
        # The embedded default: the database and a generated secret in ./data.
        secret = (here / "data" / "jwt_secret").read_text().strip()
        assert (here / "data" / "scoreboard.db").exists()
        with httpx.Client(base_url=base, timeout=scaled(10)) as client:
            body = {"user_id": "alice", "score_delta": 42, "action_id": "first-level"}
            headers = {"Authorization": f"Bearer {token('alice', name='Alice', secret=secret)}"}
            posted = client.post("/api/scores/update", json=body, headers=headers)
            assert posted.status_code == 200, posted.text
            top = client.get("/api/scores/top10").json()
            assert top == {
                "scores": [{"rank": 1, "user_id": "alice", "username": "Alice", "score": 42}]
            }
            page = client.get("/")
            assert page.status_code == 200
            assert "board.js" in page.text
            assert client.get("/static/board.js").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=scaled(20))
        log.close()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so that the exit status says so.
    assert code == -signal.SIGTERM, (tmp_path / "serve.log").read_text()
    assert "Application shutdown complete" in (tmp_path / "serve.log").read_text()


def wait_healthy(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + scaled(30)
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited at start:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"serve did not become healthy:\n{log.read_text()}")
        time.sleep(0.05)


def test_the_systemd_unit_verifies_with_the_scoreboard_the_wheel_installed(
    installed: Installed, tmp_path: Path
) -> None:
    """``deploy/scoreboard@.service`` with ``ExecStart`` at this wheel's ``scoreboard``, as a
    site owner installs it (docs/deploy.md): ``systemd-analyze verify`` has nothing to say."""
    from tests.deploy.test_scoreboard_service import assert_verified, unit_with

    assert_verified(unit_with(tmp_path, installed.bin("scoreboard")))
