"""Start and stop the servers a benchmark measures: on 127.0.0.1, free ports, temporary folders.

Each server runs pinned to one CPU (``taskset``) when a CPU is given, so that the load
generator and the server do not trade places on the machine's cores between runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"  # git-ignored; temporary server folders live here, on the real disk
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
SECRET = "bench-secret-" + "x" * 40  # only for throwaway servers on 127.0.0.1


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


NO_LIMITS = {
    "SCOREBOARD_RATE_LIMIT_USER": "",
    "SCOREBOARD_RATE_LIMIT_IP": "",
    "SCOREBOARD_VELOCITY_LIMIT": "",
}
"""Service settings that turn the update limits off."""


def address(i: int) -> str:
    """The client address benchmark user ``i`` claims in X-Forwarded-For (documentation
    prefix 2001:db8::/32: a header value only, nothing is ever sent there)."""
    return f"2001:db8::{i + 1:x}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _pinned(cpu: int | None, argv: list[str]) -> list[str]:
    if cpu is None or shutil.which("taskset") is None:
        return argv
    return ["taskset", "-c", str(cpu), *argv]


def _wait_ready(server: Server, path: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited; see {server.log}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(server.url + path, timeout=1) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not answer within {timeout:.0f} s; see {server.log}")


def _stop(server: Server) -> None:
    if server.process.poll() is not None:  # it died under us: keep its log for a post-mortem
        kept = RESULTS / f"{server.name}-{server.process.pid}-exit{server.process.returncode}.log"
        shutil.copy(server.log, kept)
        print(f"{server.name} exited with {server.process.returncode}; log kept in {kept}")
        return
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)


@contextlib.contextmanager
def service(
    cpu: int | None = None, name: str = "service", ready_timeout: float = 30.0, **env: str
) -> Iterator[Server]:
    """``scoreboard serve`` on a fresh SQLite database in a temporary folder (``env`` may name
    another, ``SCOREBOARD_DATABASE_URL``); ``ready_timeout``: how long it may take to answer
    (a large database is rebuilt into the rank index first)."""
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="service-", dir=RESULTS) as tmp:
        data = Path(tmp)
        port = free_port()
        environ = {
            **os.environ,
            "SCOREBOARD_DATABASE_URL": f"sqlite:///{data / 'scoreboard.db'}",
            "SCOREBOARD_DATA_DIR": str(data),
            "SCOREBOARD_JWT_SECRET": SECRET,
            "SCOREBOARD_LOG_LEVEL": "warning",
            # Abuse limits stay on: their checks are part of an update's cost. Each benchmark
            # user sends with an address of its own in X-Forwarded-For (127.0.0.1 is trusted
            # as the proxy), and far faster than a real player, so the per-user and velocity
            # thresholds are raised. The moving-window lists stay as long as the real traffic
            # per key, as in production. Settings an older commit lacks are ignored.
            "SCOREBOARD_TRUSTED_PROXIES": "127.0.0.1",
            "SCOREBOARD_RATE_LIMIT_USER": "1000000/minute",
            "SCOREBOARD_RATE_LIMIT_IP": "6000/minute",
            "SCOREBOARD_VELOCITY_LIMIT": str(10**12),
            "SCOREBOARD_WS_MAX_PER_ADDRESS": "100000",
            **env,
        }
        log = data / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                _pinned(cpu, [str(VENV_BIN / "scoreboard"), "serve", "--port", str(port)]),
                env=environ,
                cwd=data,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Server(name, port, process, log)
        try:
            _wait_ready(server, "/api/scores/top10", ready_timeout)
            yield server
        finally:
            _stop(server)


@contextlib.contextmanager
def bare(cpu: int | None = None) -> Iterator[Server]:
    """``bench/bare_app.py``: the same server stack with a constant response."""
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bare-", dir=RESULTS) as tmp:
        port = free_port()
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                _pinned(cpu, [sys.executable, str(BENCH / "bare_app.py"), "--port", str(port)]),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Server("bare", port, process, log)
        try:
            _wait_ready(server, "/")
            yield server
        finally:
            _stop(server)
