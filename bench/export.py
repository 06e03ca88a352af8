"""An export of a big period (issue 16): the server's memory while it streams, and the first byte.

A SQLite database of ``--users`` users (default 10^6), each with one event and a standing on
the default board ``main``, is written in bulk; ``scoreboard serve`` starts on it (building its
in-memory index from the standings, as on any start); then the client downloads
``GET /api/boards/main/export`` in each format and the script records:

- the time to the first byte of the body and to the last, and rows per second;
- the server's resident memory (``VmRSS``, sampled every 20 ms) before the request and its
  highest value during it: the growth is what the export costs (target: < 50 MiB);
- the CPU of the server and of the client (the load generator) during the download.

    .venv/bin/python bench/export.py [--users 1000000] [--json FILE]

The server imports the work tree's ``src/`` (this script measures the code beside it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

import machine
import servers

NOW = "2026-11-30 00:00:00.000000"


def fill(database: Path, users: int) -> None:
    """``users`` users with one event each and their standing on ``main`` (all time)."""
    with contextlib.closing(sqlite3.connect(database)) as conn:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.executemany(
            "INSERT INTO users (user_id, username, created_at, updated_at) VALUES (?, ?, ?, ?)",
            ((f"user{i}", f"Player {i}", NOW, NOW) for i in range(users)),
        )
        conn.executemany(
            "INSERT INTO scores (score_id, user_id, score_delta, action_id, created_at,"
            " score_after, metric) VALUES (?, ?, ?, ?, ?, ?, 'points')",
            ((i + 1, f"user{i}", _score(i), f"a{i}", NOW, _score(i)) for i in range(users)),
        )
        conn.executemany(
            "INSERT INTO totals (user_id, metric, total, last_at) VALUES (?, 'points', ?, ?)",
            ((f"user{i}", _score(i), NOW) for i in range(users)),
        )
        conn.executemany(
            "INSERT INTO standings (board_id, period_id, user_id, score, rank_score, reached,"
            " version, updated_at) VALUES ('main', 'all', ?, ?, ?, ?, 1, ?)",
            ((f"user{i}", _score(i), -_score(i), i + 1, NOW) for i in range(users)),
        )
        conn.commit()


def _score(i: int) -> int:
    return (i * 7919) % 1_000_003 + 1


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """The highest ``VmRSS`` of one process while running, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_kib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_kib(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.peak, rss_kib(self.pid))


def download(url: str, pid: int) -> dict[str, Any]:
    before = rss_kib(pid)
    sampler = RssSampler(pid)
    meter = machine.CpuMeter(pid)
    started = time.perf_counter()
    first = None
    size = lines = 0
    with httpx.stream("GET", url, timeout=600) as response:
        response.raise_for_status()
        for data in response.iter_bytes():
            if first is None and data:
                first = time.perf_counter() - started
            size += len(data)
            lines += data.count(b"\n")
    total = time.perf_counter() - started
    cpu = meter.stop()
    peak = sampler.stop()
    return {
        "first_byte_s": first,
        "total_s": total,
        "bytes": size,
        "lines": lines,
        "rows_per_s": lines / total,
        "rss_before_mib": before / 1024,
        "rss_growth_mib": (peak - before) / 1024,
        **cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    servers.RESULTS.mkdir(exist_ok=True)
    results: dict[str, Any] = {"machine": machine.info(servers.ROOT), "users": args.users}
    with tempfile.TemporaryDirectory(prefix="export-", dir=servers.RESULTS) as tmp:
        data = Path(tmp)
        env = {
            **os.environ,
            "PYTHONPATH": str(servers.ROOT / "src"),
            "SCOREBOARD_DATABASE_URL": f"sqlite:///{data / 'scoreboard.db'}",
            "SCOREBOARD_DATA_DIR": str(data),
            "SCOREBOARD_JWT_SECRET": servers.SECRET,
            "SCOREBOARD_LOG_LEVEL": "warning",
            "SCOREBOARD_RATE_LIMIT_EXPORT": "",
        }
        scoreboard = str(servers.VENV_BIN / "scoreboard")
        subprocess.run([scoreboard, "migrate"], env=env, check=True, capture_output=True)
        started = time.perf_counter()
        fill(data / "scoreboard.db", args.users)
        results["fill_s"] = time.perf_counter() - started
        port = servers.free_port()
        log = data / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [scoreboard, "serve", "--port", str(port)],
                env=env,
                cwd=data,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = servers.Server("service", port, process, log)
        try:
            started = time.perf_counter()
            servers._wait_ready(server, "/api/scores/top10", timeout=600)
            results["start_s"] = time.perf_counter() - started
            results["others_before"] = machine.wait_quiet(0.3, timeout=30)
            for form in ("csv", "ndjson"):
                url = f"{server.url}/api/boards/main/export?format={form}"
                results[form] = download(url, process.pid)
                print(form, json.dumps(results[form], indent=1), flush=True)
        finally:
            servers._stop(server)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
