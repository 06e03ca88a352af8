"""What the benchmark ran on, and how busy the machine was with other work meanwhile.

Numbers from a shared machine mean little unless they say how much of it others used, so every
measurement records the CPU time that processes other than its own used during it
(:class:`CpuMeter`), and a run can wait, briefly and boundedly, for a quiet machine first.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def info(root: Path) -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])

    def run(*argv: str) -> str:
        return subprocess.run(
            argv, cwd=root, capture_output=True, text=True, check=False
        ).stdout.strip()

    commit = run("git", "rev-parse", "--short", "HEAD")
    dirty = run("git", "status", "--porcelain", "--", "src")
    wrk = run("wrk", "--version").splitlines()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit + (" (src/ has uncommitted changes)" if dirty else ""),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk[0] if wrk else "?",
    }


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs, since boot)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICK


def process_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads), or 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _self_and_children() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


class CpuMeter:
    """CPU used during an interval: by the given running processes (each), by this process and
    the children it reaped meanwhile (a load generator), and by everything else on the machine.
    Figures are in CPUs (1.0 = one core busy all the time)."""

    def __init__(self, *pids: int, loadgen: tuple[int, ...] = ()) -> None:
        """``loadgen``: running processes that are part of the load generator (a compiled
        client this process started), counted with it."""
        self.pids = pids
        self.loadgen = loadgen
        self._start = time.monotonic()
        self._busy = busy_seconds()
        self._own = [process_seconds(p) for p in pids]
        self._helpers = [process_seconds(p) for p in loadgen]
        self._mine = _self_and_children()

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._start
        own = [process_seconds(p) - s for p, s in zip(self.pids, self._own, strict=True)]
        helpers = [process_seconds(p) - s for p, s in zip(self.loadgen, self._helpers, strict=True)]
        mine = _self_and_children() - self._mine + sum(helpers)
        busy = busy_seconds() - self._busy
        return {
            "wall": wall,
            "server_cpus": sum(own) / wall,
            "loadgen_cpus": mine / wall,
            "others_cpus": max(0.0, busy - sum(own) - mine) / wall,
        }


def wait_quiet(limit: float = 0.25, timeout: float = 60.0) -> float:
    """Wait up to ``timeout`` seconds for a second in which the machine is at most ``limit``
    CPUs busy; return the last measured load either way (the caller records it)."""
    deadline = time.monotonic() + timeout
    load = 0.0
    while True:
        start, wall = busy_seconds(), time.monotonic()
        time.sleep(1.0)
        load = (busy_seconds() - start) / (time.monotonic() - wall)
        if load <= limit or time.monotonic() >= deadline:
            return load
