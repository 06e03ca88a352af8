"""Memory per (board, period, user) entry in the rank indexes (issue 13): the embedded
in-memory index and the Redis index, for boards of 10^2 to 10^5 entries
(10^6 with ``--sizes``).

**In-memory index** (``MemoryRankIndex``), each size measured in a fresh subprocess:

- ``tracemalloc``: the Python heap the index holds after ``N`` writes through ``apply`` (the
  live path: a new period starts empty and fills one update at a time), the ``Standing`` of
  each entry and its id and name strings made inside the measurement, as the store's results
  make them; the same with ``load`` (the rebuild's bulk path);
- the process's RSS before and after the same ``apply`` writes, without ``tracemalloc`` (what
  the operating system sees, allocator slack included);
- ``--boards 3``: the same users on three boards (three indexes, as three boards fed by one
  update are), the id and name strings shared between the boards as one update's standings
  share them: bytes per (board, user) entry when a user is on several boards.

**Redis index** (``RedisRankIndex``, the project's key layout ``{prefix}{<board>}:<period>:z``,
``:members``, ``:versions``, ``:names``...): ``N`` standings loaded with ``load``, then
``MEMORY USAGE key SAMPLES 0`` (exact) summed over the period's keys, and the server's
``INFO memory`` ``used_memory`` before and after (disturbed by anything else using that Redis
meanwhile). Keys use a prefix of their own (``bench-memory:<pid>:``), deleted afterwards.

    .venv/bin/python bench/memory.py                         # about 3 minutes
    .venv/bin/python bench/memory.py --sizes 1000000 --redis ''   # 10^6: about 10 minutes
    .venv/bin/python bench/memory.py --sizes 100,1000,10000 --redis ''   # memory index only
    .venv/bin/python bench/memory.py --chart docs/benchmarks-memory.png \\
        --json bench/results/memory.json

The chart (matplotlib) shows bytes per entry against entries for each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import machine
import servers

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


def standings(n: int, board: int = 0) -> list[Any]:
    """``n`` standings as a store's results make them: each with its own id and name strings
    and integers (scores and versions past the small-int cache)."""
    from scoreboard.model import Standing

    return [
        Standing(
            f"user-{i:07d}", f"Player {i}", 1000 + (i * 7919 + board) % 1_000_003, 1 + i % 3, i
        )
        for i in range(n)
    ]


async def fill(index: Any, items: list[Any], how: str) -> None:
    if how == "load":
        await index.load("p1", iter(items))
    else:
        for standing in items:
            await index.apply("p1", standing)


def one_memory(n: int, how: str, boards: int, traced: bool) -> dict[str, float]:
    """In this process: the bytes the index holds for ``n`` users on ``boards`` boards."""
    from scoreboard.adapters.memory_index import MemoryRankIndex
    from scoreboard.model import Standing

    async def build() -> list[Any]:
        indexes = [MemoryRankIndex(period="p1") for _ in range(boards)]
        for index in indexes:
            await index.start_period("p1")
        first = standings(n)
        await fill(indexes[0], first, how)
        for b, index in enumerate(indexes[1:], 1):
            # Another board's standing of the same users: their strings, other numbers.
            items = [
                Standing(s.user_id, s.username, s.score + b, s.version + b, s.reached)
                for s in first
            ]
            await fill(index, items, how)
        del first
        return indexes

    gc.collect()
    if traced:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    else:
        before = rss()
    started = time.perf_counter()
    indexes = asyncio.run(build())
    seconds = time.perf_counter() - started
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if traced else rss()
    if traced:
        tracemalloc.stop()
    assert all(len(i._users) == n for i in indexes)
    return {
        "bytes": after - before,
        "per_entry": (after - before) / (n * boards),
        "seconds": seconds,
    }


def memory_index(n: int, how: str, boards: int, traced: bool) -> dict[str, float]:
    """:func:`one_memory` in a fresh interpreter (RSS and the heap start clean)."""
    out = subprocess.run(
        [sys.executable, __file__, "--one", f"{n},{how},{boards},{int(traced)}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


async def redis_index(url: str, n: int) -> dict[str, float]:
    from redis.asyncio import Redis

    from scoreboard.adapters.redis_index import RedisRankIndex

    client: Any = Redis.from_url(url)
    prefix = f"bench-memory:{os.getpid()}:{n}:"
    index = RedisRankIndex(client, prefix=prefix, board="b", period="p1")
    try:
        await index.start_period("p1")
        items = standings(n)
        used_before = (await client.info("memory"))["used_memory"]
        started = time.perf_counter()
        for first in range(0, n, 10_000):
            await index.load("p1", items[first : first + 10_000])
        seconds = time.perf_counter() - started
        used_after = (await client.info("memory"))["used_memory"]
        assert await index.size() == n
        keys = index.keys_of("p1")
        usage = {}
        for key in keys:
            size = await client.memory_usage(key, samples=0)
            usage[key.rsplit(":", 1)[1]] = size or 0
        entries = sum(usage[k] for k in ("z", "members", "versions", "names"))
        encodings = {
            k: (await client.object("encoding", key) or b"").decode()
            for k, key in zip(("z", "members"), keys[:2], strict=True)
        }
        return {
            "per_entry": entries / n,
            "all_keys_per_entry": sum(usage.values()) / n,
            "used_memory_per_entry": (used_after - used_before) / n,
            "keys": usage,
            "encodings": encodings,
            "seconds": seconds,
        }
    finally:
        cursor = 0
        while True:
            cursor, found = await client.scan(
                cursor, match=f"bench-memory:{os.getpid()}:*", count=1000
            )
            if found:
                await client.delete(*found)
            if cursor == 0:
                break
        await client.aclose()


def chart(path: Path, sizes: list[int], rows: dict[str, list[float | None]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    for label, values in rows.items():
        points = [(n, v) for n, v in zip(sizes, values, strict=True) if v is not None]
        if points:
            style = "--" if "RSS" in label or "used_memory" in label else "-"
            axes.plot(*zip(*points, strict=True), style, marker="o", label=label)
    axes.set_xscale("log")
    axes.set_xlabel("entries (users on one board, one period)")
    axes.set_ylabel("bytes per entry")
    axes.set_ylim(bottom=0)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title("Rank index memory per (board, period, user) entry")
    figure.tight_layout()
    figure.savefig(path)
    print(f"chart: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12", help="'' to skip Redis")
    parser.add_argument("--chart", type=Path, help="draw bytes per entry to this PNG")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # n,how,boards,traced: one subprocess
    args = parser.parse_args()
    if args.one:
        n, how, boards, traced = args.one.split(",")
        print(json.dumps(one_memory(int(n), how, int(boards), traced == "1")))
        return
    info = machine.info(servers.ROOT)
    print(f"commit {info['commit']}, {info['date']}", flush=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    meter = machine.CpuMeter()
    results: dict[str, list[Any]] = {
        "apply": [],
        "load": [],
        "apply, 3 boards": [],
        "rss": [],
        "redis": [],
    }
    print(
        "| entries | memory index, apply (B/entry) | load | 3 boards, shared strings | RSS delta "
        "| Redis, MEMORY USAGE | Redis, used_memory delta | Redis encodings (z, members) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        results["apply"].append(memory_index(n, "apply", 1, True))
        results["load"].append(memory_index(n, "load", 1, True))
        results["apply, 3 boards"].append(memory_index(n, "apply", 3, True))
        results["rss"].append(memory_index(n, "apply", 1, False))
        redis = asyncio.run(redis_index(args.redis, n)) if args.redis else None
        results["redis"].append(redis)
        row = f"| {n:,} | " + " | ".join(
            f"{results[k][-1]['per_entry']:.0f}"
            for k in ("apply", "load", "apply, 3 boards", "rss")
        )
        if redis:
            row += (
                f" | {redis['per_entry']:.0f} | {redis['used_memory_per_entry']:.0f} | "
                f"{redis['encodings']['z']}, {redis['encodings']['members']} |"
            )
        else:
            row += " | | | |"
        print(row, flush=True)
    cpu = meter.stop()
    print(
        f"\nCPUs during the run: this benchmark {cpu['loadgen_cpus']:.2f}, "
        f"others {cpu['others_cpus']:.2f} (Redis's own work counts among the others)"
    )
    if args.chart:
        rows: dict[str, list[float | None]] = {
            "memory index (tracemalloc, apply)": [r["per_entry"] for r in results["apply"]],
            "memory index, 3 boards sharing strings": [
                r["per_entry"] for r in results["apply, 3 boards"]
            ],
            "memory index (RSS delta)": [r["per_entry"] for r in results["rss"]],
        }
        if args.redis:
            rows["Redis (MEMORY USAGE)"] = [r["per_entry"] for r in results["redis"]]
            rows["Redis (used_memory delta)"] = [
                r["used_memory_per_entry"] for r in results["redis"]
            ]
        chart(args.chart, sizes, rows)
    if args.json:
        saved = {"machine": info, "sizes": sizes, "results": results, "cpu": cpu}
        args.json.write_text(json.dumps(saved, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
