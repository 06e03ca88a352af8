"""A real ``scoreboard serve`` process on a free port, for e2e and browser tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.timing import scaled

SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ServerProcess:
    """``python -m scoreboard serve`` with its own data folder and port.

    ``start()`` returns once ``/healthz`` answers; ``kill()`` sends SIGKILL, ``stop()`` SIGTERM.
    The same object can be started again on the same port and data (a restart).
    """

    def __init__(
        self,
        data_dir: Path,
        env: Mapping[str, str] | None = None,
        serve_args: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.extra_env = dict(env or {})
        self.serve_args = list(serve_args)
        """Extra ``serve`` flags, e.g. ``["--workers", "2"]``."""
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/scoreboard"

    @property
    def database(self) -> Path:
        return self.data_dir / "scoreboard.db"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
        env.update(
            SCOREBOARD_DATABASE_URL=f"sqlite:///{self.database}",
            SCOREBOARD_DATA_DIR=str(self.data_dir),
            SCOREBOARD_JWT_SECRET=SECRET,
            SCOREBOARD_PORT=str(self.port),
            # Every test client is 127.0.0.1 and many post bursts for one user: the limits a
            # public site needs are off unless a test turns them on (tests/e2e/test_hardening).
            SCOREBOARD_RATE_LIMIT_USER="",
            SCOREBOARD_RATE_LIMIT_IP="",
            SCOREBOARD_VELOCITY_LIMIT="",
            SCOREBOARD_WS_MAX_PER_ADDRESS="",
            SCOREBOARD_ADMIN_AUTH_LIMIT="",
            # The suite runs on 4 workers, each of which may run two PostgreSQL servers at
            # once: 16 connections each (and a LISTEN) could pass the server's max_connections
            # (100); 10 stay under it. Fewer made bursts of 150 updates queue past the store's
            # 1.5 s call timeout on a loaded machine (503).
            SCOREBOARD_DATABASE_POOL_SIZE="10",
        )
        env.update(self.extra_env)
        return env

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """``python -m scoreboard ARGS`` on this server's data and settings (``boards rollover
        season``, say), as an operator would run it next to the server; fails unless it exits 0."""
        done = subprocess.run(
            [sys.executable, "-m", "scoreboard", *args],
            env=self.env(),
            cwd=self.data_dir,
            capture_output=True,
            text=True,
            timeout=scaled(timeout),
            check=False,
        )
        assert done.returncode == 0, f"scoreboard {' '.join(args)}: {done.stdout}{done.stderr}"
        return done

    def start(self, timeout: float = 20) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scoreboard", "serve", *self.serve_args],
            env=self.env(),
            cwd=self.data_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + scaled(timeout)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"server did not become healthy:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=scaled(10))
        self.proc = None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(15))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code
