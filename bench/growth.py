"""How cost grows (issue 17): updates, staleness and memory against the size of what is held.

Four curves, each point short (one wrk run of ``--duration`` seconds after a warm-up, one
staleness phase), each measured with the machinery of ``run.py``, ``boards.py`` and
``staleness.py``: servers from ``servers.py`` pinned to ``--server-cpu``, wrk and the
WebSocket clients pinned to ``--wrk-cpu``, and ``machine.CpuMeter`` beside every figure (the
server's CPUs, the load generator's, and everyone else's).

1. **Users already on the board** (``--users``, default 10^3..10^6): a SQLite database is
   written in bulk (``export.fill``: users, one event each, totals and their standing on the
   default board ``main``, in the schema ``scoreboard migrate`` makes), ``scoreboard serve``
   starts on it (rebuilding its rank index from the standings: the start time is reported),
   then wrk posts updates (``wrk/update.lua``, 1,000 users of their own, limits on, as
   ``run.py``). Reported: updates/s, p50/p99, the server's RSS after start and after the load.
2. **Boards fed per update** (``--boards``, 1, 3, 10): ``boards.boards_toml(n)``, the same wrk
   run on a fresh database.
3. **Staleness against sockets** (``--sockets``, 100..10,000): ``staleness.py --client c`` at
   ``--rate`` (10) updates/s for ``--staleness-seconds``, run as a subprocess; its p99.
4. **RSS against idle sockets** (``--idle``, 100..10,000): a fresh service, ten sockets opened
   and closed (the WebSocket path's first use is not a socket's cost), its RSS, then
   ``wsreader.c`` holds N sockets on ``/ws/scoreboard`` with no updates; the RSS growth over N
   is the memory per idle socket (issue 17's target: at most 20 KiB).

Charts (matplotlib) go to ``--charts`` (``docs/growth-*.png``), and a markdown table of every
number is printed.

    .venv/bin/python bench/growth.py --quick --charts ''    # smoke run: smallest sizes, ~1 min
    .venv/bin/python bench/growth.py --json bench/results/growth.json   # ~15 min quiet machine
    .venv/bin/python bench/growth.py --report bench/results/growth.json # table and charts again
    .venv/bin/python bench/growth.py --parts users --users 1000,10000 --duration 3

Like ``run.py``, the servers import the committed ``src/`` of ``--rev`` (default ``HEAD``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import boards
import export
import machine
import run
import servers
import wsreader

PARTS = ("users", "boards", "staleness", "idle")
IDLE_TARGET_KIB = 20.0
"""Issue 17: memory per idle socket, at most this."""
SIZES = {"users": "1e3,1e4,1e5,1e6", "boards": "1,3,10", "sockets": "100,1000,10000"}
SIZES["idle"] = "100,1000,10000"
QUICK = {"users": "1e3,1e4", "boards": "1,3", "sockets": "100", "idle": "100"}


def sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def rss_kib(pid: int) -> int:
    return export.rss_kib(pid)


def wrk_point(
    args: argparse.Namespace, wrk: str, server: servers.Server, token_file: Path
) -> dict[str, Any]:
    """A warm-up, then one measured wrk run of updates (``run.measure``: quiet wait, repeats)."""
    warm = argparse.Namespace(
        **{**vars(args), "duration": args.warmup, "attempts": 1, "quiet_wait": 0}
    )
    run.measure(wrk, warm, server, "updates", token_file)
    r = run.measure(wrk, args, server, "updates", token_file)
    return {
        "rps": r["rps"],
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "cpu_us": r["server_cpu_us_per_request"],
        "server_cpus": r["server_cpus"],
        "loadgen_cpus": r["loadgen_cpus"],
        "others_cpus": r["others_cpus"],
        "non2xx": r["non2xx"],
        "socket_errors": r["socket_errors"],
    }


def _line(label: str, point: dict[str, Any]) -> None:
    print(
        f"{label:>16}  {point['rps']:8.0f} updates/s  p99 {point['p99_ms']:7.2f} ms"
        f"  CPUs: server {point['server_cpus']:.2f} wrk {point['loadgen_cpus']:.2f}"
        f" others {point['others_cpus']:.2f}  non-2xx {point['non2xx']}",
        flush=True,
    )


def check_filled(server: servers.Server, users: int) -> None:
    """The board the server serves is the pre-filled one (its leader is a filled user)."""
    with urllib.request.urlopen(server.url + "/api/scores/top10", timeout=10) as response:
        body = json.loads(response.read())
    text = json.dumps(body)
    if users and '"user_id": "user' not in text:
        raise RuntimeError(f"{server.name}: the filled users are not on the board: {text[:300]}")


def by_users(args: argparse.Namespace, wrk: str, token_file: Path) -> list[dict[str, Any]]:
    points = []
    scoreboard = str(servers.VENV_BIN / "scoreboard")
    for n in args.users:
        with tempfile.TemporaryDirectory(prefix=f"growth-users{n}-", dir=servers.RESULTS) as tmp:
            database = Path(tmp) / "scoreboard.db"
            url = f"sqlite:///{database}"
            env = {**os.environ, "SCOREBOARD_DATABASE_URL": url, "SCOREBOARD_DATA_DIR": tmp}
            env["SCOREBOARD_JWT_SECRET"] = servers.SECRET
            subprocess.run([scoreboard, "migrate"], env=env, check=True, capture_output=True)
            started = time.perf_counter()
            export.fill(database, n)
            fill_s = time.perf_counter() - started
            started = time.perf_counter()
            with servers.service(
                cpu=args.server_cpu,
                name=f"users{n}",
                ready_timeout=900,
                SCOREBOARD_DATABASE_URL=url,
            ) as server:
                start_s = time.perf_counter() - started
                check_filled(server, n)
                time.sleep(1)  # let the rebuild's garbage go before reading RSS
                rss_start = rss_kib(server.process.pid)
                point = wrk_point(args, wrk, server, token_file)
                rss_after = rss_kib(server.process.pid)
        point |= {
            "users": n,
            "fill_s": fill_s,
            "start_s": start_s,
            "rss_start_mib": rss_start / 1024,
            "rss_after_mib": rss_after / 1024,
        }
        _line(f"{n:,} users", point)
        print(
            f"{'':>16}  fill {fill_s:.1f} s  start {start_s:.1f} s"
            f"  RSS {rss_start / 1024:.0f} MiB at start, {rss_after / 1024:.0f} MiB after",
            flush=True,
        )
        points.append(point)
    return points


def by_boards(
    args: argparse.Namespace, wrk: str, token_file: Path, tmp: Path
) -> list[dict[str, Any]]:
    points = []
    for n in args.boards:
        path = tmp / f"boards-{n}.toml"
        path.write_text(boards.boards_toml(n))
        with servers.service(
            cpu=args.server_cpu, name=f"boards{n}", SCOREBOARD_BOARDS=str(path)
        ) as server:
            point = wrk_point(args, wrk, server, token_file) | {"boards": n}
        _line(f"{n} boards", point)
        points.append(point)
    return points


def by_sockets(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    points = []
    for n in args.sockets:
        out = tmp / f"staleness-{n}.json"
        argv = [sys.executable, str(servers.BENCH / "staleness.py"), "--client", "c"]
        argv += ["--clients", str(n), "--rates", str(args.rate)]
        argv += ["--seconds", str(args.staleness_seconds), "--json", str(out)]
        argv += ["--quiet-wait", str(args.quiet_wait), "--max-others", str(args.max_others)]
        argv += ["--attempts", str(args.attempts)]
        if args.wrk_cpu is not None:
            argv += ["--cpu", str(args.wrk_cpu)]
        if args.server_cpu is not None:
            argv += ["--server-cpu", str(args.server_cpu)]
        subprocess.run(argv, check=True, timeout=10 * args.staleness_seconds + 300)
        phase = json.loads(out.read_text())["phases"][0]
        point = {
            "sockets": n,
            "rate": args.rate,
            "seconds": args.staleness_seconds,
            "updates_ok": phase["updates_ok"],
            "p50_ms": phase["p50_ms"],
            "p99_ms": phase["p99_ms"],
            "max_ms": phase["max_ms"],
            "all_sockets_p99_ms": phase["last_socket_p99_ms"],
            "delivered": phase["delivered_fraction"],
            "server_cpus": phase["server_cpus"] or 0.0,
            "loadgen_cpus": phase["client_cpus"],
            "others_cpus": phase["others_cpus"] or 0.0,
        }
        print(
            f"{n:>10,} sockets  p99 {point['p99_ms']:7.1f} ms"
            f"  CPUs: server {point['server_cpus']:.2f} clients {point['loadgen_cpus']:.2f}"
            f" others {point['others_cpus']:.2f}",
            flush=True,
        )
        points.append(point)
    return points


async def _hold(server: servers.Server, count: int, cpu: int | None, seconds: float) -> int:
    """Open ``count`` sockets on ``/ws/scoreboard``, hold them ``seconds``; the open count."""
    reader = wsreader.Reader(servers.HOST, server.port, "/ws/scoreboard", count, {})
    try:
        await reader.start(cpu=cpu)
        await asyncio.sleep(seconds)
        await reader.flush()
        return reader.open
    finally:
        await reader.stop()


async def idle_point(args: argparse.Namespace, n: int) -> dict[str, Any]:
    with servers.service(cpu=args.server_cpu, name=f"idle{n}") as server:
        pid = server.process.pid
        await _hold(server, 10, args.wrk_cpu, 0.5)  # the /ws path's first use
        await asyncio.sleep(1)
        before = rss_kib(pid)
        meter = machine.CpuMeter(pid)  # the reader is reaped before stop(): counted as ours
        reader = wsreader.Reader(servers.HOST, server.port, "/ws/scoreboard", n, {})
        try:
            await reader.start(cpu=args.wrk_cpu)
            await asyncio.sleep(args.idle_hold)
            await reader.flush()
            held = rss_kib(pid)
            opened = reader.open
        finally:
            await reader.stop()
        cpu = meter.stop()
    return {
        "sockets": n,
        "open": opened,
        "rss_before_mib": before / 1024,
        "rss_held_mib": held / 1024,
        "kib_per_socket": (held - before) / max(1, opened),
        "server_cpus": cpu["server_cpus"],
        "loadgen_cpus": cpu["loadgen_cpus"],
        "others_cpus": cpu["others_cpus"],
        "wall_s": cpu["wall"],
    }


def by_idle(args: argparse.Namespace) -> list[dict[str, Any]]:
    points = []
    for n in args.idle:
        point = asyncio.run(idle_point(args, n))
        print(
            f"{n:>10,} idle sockets  RSS {point['rss_before_mib']:.1f} -> "
            f"{point['rss_held_mib']:.1f} MiB  {point['kib_per_socket']:.1f} KiB/socket"
            f"  ({point['open']} open)  CPUs: server {point['server_cpus']:.2f}"
            f" clients {point['loadgen_cpus']:.2f} others {point['others_cpus']:.2f}",
            flush=True,
        )
        points.append(point)
    return points


def _cpus(p: dict[str, Any]) -> str:
    return f"{p['server_cpus']:.2f}, {p['loadgen_cpus']:.2f}, {p['others_cpus']:.2f}"


def report(info: dict[str, str], settings: dict[str, Any], results: dict[str, Any]) -> str:
    lines = [
        f"date {info['date']}, commit {info['commit']}",
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, "
        f"Linux {info['kernel']}, Python {info['python']}, {info['wrk']}",
        f"wrk -t{settings['threads']} -c{settings['connections']} -d{settings['duration']}s "
        f"after {settings['warmup']} s of warm-up, 1 run per point (repeated up to "
        f"{settings['attempts']} times if others used > {settings['max_others']} CPUs); "
        f"servers on CPU {settings['server_cpu']}, wrk and clients on CPU {settings['wrk_cpu']}. "
        "CPUs columns: server, load generator, other processes.",
    ]
    if "finished" in info:
        others = [p["others_cpus"] for points in results.values() for p in points]
        lines.append(
            f"run {info['date']} to {info['finished']}; /proc/loadavg before: "
            f"{info['loadavg_before']}, after: {info['loadavg_after']}; other processes used "
            f"{min(others):.2f}-{max(others):.2f} CPUs during the measured points"
        )
    if results.get("users"):
        lines += [
            "",
            "| users on the board | updates/s | p50 | p99 | server CPU per update | "
            "fill | start (rebuild) | RSS at start | RSS after load | CPUs: server, wrk, others |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p in results["users"]:
            lines.append(
                f"| {p['users']:,} | {p['rps']:,.0f} | {p['p50_ms']:.2f} ms | "
                f"{p['p99_ms']:.2f} ms | {p['cpu_us']:.0f} µs | {p['fill_s']:.1f} s | "
                f"{p['start_s']:.1f} s | {p['rss_start_mib']:.0f} MiB | "
                f"{p['rss_after_mib']:.0f} MiB | {_cpus(p)} |"
            )
    if results.get("boards"):
        lines += [
            "",
            "| boards fed per update | updates/s | p50 | p99 | server CPU per update | "
            "CPUs: server, wrk, others |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for p in results["boards"]:
            lines.append(
                f"| {p['boards']} | {p['rps']:,.0f} | {p['p50_ms']:.2f} ms | "
                f"{p['p99_ms']:.2f} ms | {p['cpu_us']:.0f} µs | {_cpus(p)} |"
            )
    if results.get("staleness"):
        lines += [
            "",
            "| sockets | updates | p50 | p99 | max | all sockets p99 | frames / (updates x "
            "sockets) | CPUs: server, clients, others |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for p in results["staleness"]:
            lines.append(
                f"| {p['sockets']:,} | {p['updates_ok']} at {p['rate']:g}/s | "
                f"{p['p50_ms']:.1f} ms | {p['p99_ms']:.1f} ms | {p['max_ms']:.1f} ms | "
                f"{p['all_sockets_p99_ms']:.1f} ms | {p['delivered']:.0%} | {_cpus(p)} |"
            )
    if results.get("idle"):
        lines += [
            "",
            f"| idle sockets | open | RSS before | RSS held | per socket (target ≤ "
            f"{IDLE_TARGET_KIB:.0f} KiB) | CPUs: server, clients, others |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for p in results["idle"]:
            verdict = "met" if p["kib_per_socket"] <= IDLE_TARGET_KIB else "MISSED"
            lines.append(
                f"| {p['sockets']:,} | {p['open']:,} | {p['rss_before_mib']:.1f} MiB | "
                f"{p['rss_held_mib']:.1f} MiB | {p['kib_per_socket']:.1f} KiB ({verdict}) | "
                f"{_cpus(p)} |"
            )
    return "\n".join(lines)


def charts(folder: Path, results: dict[str, Any]) -> list[Path]:
    """One PNG per curve, each with the CPUs (server, load generator, others) beneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []

    def cpu_panel(axes: Any, xs: list[int], points: list[dict[str, Any]], xlabel: str) -> None:
        for key, label, style in (
            ("server_cpus", "server", "-"),
            ("loadgen_cpus", "load generator", "--"),
            ("others_cpus", "other processes", ":"),
        ):
            axes.plot(xs, [p[key] for p in points], style, marker="o", label=label)
        axes.set_ylabel("CPUs busy")
        top = max(p[key] for p in points for key in ("server_cpus", "loadgen_cpus", "others_cpus"))
        axes.set_ylim(0, max(1.2, top * 1.1))
        axes.set_xlabel(xlabel)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=7)

    def throughput(key: str, points: list[dict[str, Any]], xlabel: str, title: str) -> None:
        xs = [p[key] for p in points]
        figure, (rate, p99, cpu) = plt.subplots(3, 1, figsize=(7, 8), dpi=100, sharex=True)
        rate.plot(xs, [p["rps"] for p in points], marker="o")
        for x, p in zip(xs, points, strict=True):
            rate.annotate(f"{p['rps']:,.0f}", (x, p["rps"]), fontsize=7, xytext=(4, 4),
                          textcoords="offset points")  # fmt: skip
        rate.set_ylabel("updates/s")
        rate.set_ylim(bottom=0)
        p99.plot(xs, [p["p99_ms"] for p in points], marker="o", color="C3", label="p99")
        p99.plot(xs, [p["p50_ms"] for p in points], "--", marker=".", color="C1", label="p50")
        p99.set_ylabel("update latency (ms)")
        p99.set_ylim(bottom=0)
        p99.legend(fontsize=7)
        for axes in (rate, p99):
            axes.grid(True, which="both", alpha=0.3)
        cpu_panel(cpu, xs, points, xlabel)
        if key == "users":
            cpu.set_xscale("log")
        rate.set_title(title)
        figure.tight_layout()
        path = folder / f"growth-{key}.png"
        figure.savefig(path)
        plt.close(figure)
        made.append(path)

    if results.get("users"):
        throughput(
            "users",
            results["users"],
            "users already on the board (log)",
            "POST /api/scores/update against users on the board (limits on)",
        )
    if results.get("boards"):
        throughput(
            "boards",
            results["boards"],
            "boards fed per update",
            "POST /api/scores/update against boards fed per update (limits on)",
        )
    if results.get("staleness"):
        points = results["staleness"]
        xs = [p["sockets"] for p in points]
        figure, (top, cpu) = plt.subplots(2, 1, figsize=(7, 6), dpi=100, sharex=True)
        for key, label, style in (
            ("p50_ms", "p50", "--"),
            ("p99_ms", "p99", "-"),
            ("all_sockets_p99_ms", "p99 of the slowest socket", ":"),
        ):
            top.plot(xs, [p[key] for p in points], style, marker="o", label=label)
        for x, p in zip(xs, points, strict=True):
            top.annotate(f"{p['p99_ms']:.1f} ms", (x, p["p99_ms"]), fontsize=7, xytext=(4, 4),
                         textcoords="offset points")  # fmt: skip
        top.set_ylabel("staleness (ms)")
        top.set_ylim(bottom=0)
        top.grid(True, which="both", alpha=0.3)
        top.legend(fontsize=7)
        top.set_title(f"Board staleness against sockets, {points[0]['rate']:g} updates/s")
        cpu_panel(cpu, xs, points, "WebSocket clients (log)")
        cpu.set_xscale("log")
        figure.tight_layout()
        path = folder / "growth-staleness.png"
        figure.savefig(path)
        plt.close(figure)
        made.append(path)
    users, idle = results.get("users") or [], results.get("idle") or []
    if users or idle:
        figure, grid = plt.subplots(2, 2, figsize=(10, 6), dpi=100, squeeze=False)
        if users:
            xs = [p["users"] for p in users]
            grid[0][0].plot(xs, [p["rss_start_mib"] for p in users], marker="o", label="at start")
            grid[0][0].plot(
                xs, [p["rss_after_mib"] for p in users], "--", marker="o", label="after load"
            )
            grid[0][0].set_xscale("log")
            grid[0][0].set_ylim(bottom=0)
            grid[0][0].set_ylabel("server RSS (MiB)")
            grid[0][0].set_title("RSS against users on the board")
            grid[0][0].legend(fontsize=7)
            grid[0][0].grid(True, which="both", alpha=0.3)
            cpu_panel(grid[1][0], xs, users, "users (log); CPUs during the wrk run")
            grid[1][0].set_xscale("log")
        if idle:
            xs = [p["sockets"] for p in idle]
            grid[0][1].plot(xs, [p["rss_held_mib"] for p in idle], marker="o", label="RSS held")
            grid[0][1].plot(xs, [p["rss_before_mib"] for p in idle], ":", label="RSS before")
            for x, p in zip(xs, idle, strict=True):
                grid[0][1].annotate(f"{p['kib_per_socket']:.1f} KiB/socket",
                                    (x, p["rss_held_mib"]), fontsize=7, xytext=(-30, 6),
                                    textcoords="offset points")  # fmt: skip
            grid[0][1].set_xscale("log")
            grid[0][1].set_ylabel("server RSS (MiB)")
            grid[0][1].set_title("RSS against idle sockets")
            grid[0][1].legend(fontsize=7)
            grid[0][1].grid(True, which="both", alpha=0.3)
            cpu_panel(grid[1][1], xs, idle, "idle sockets (log); CPUs while connecting and held")
            grid[1][1].set_xscale("log")
        figure.tight_layout()
        path = folder / "growth-memory.png"
        figure.savefig(path)
        plt.close(figure)
        made.append(path)
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help="which curves, of " + str(PARTS))
    for name in SIZES:
        parser.add_argument(
            f"--{name}",
            type=sizes,
            help=f"sizes, comma-separated (default {SIZES[name]}; --quick: {QUICK[name]})",
        )
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk warm-up per point")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rate", type=float, default=10, help="staleness: updates/s")
    parser.add_argument("--staleness-seconds", type=float, default=10)
    parser.add_argument("--idle-hold", type=float, default=3, help="seconds sockets are held")
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--wrk-cpu", type=int, default=0)
    parser.add_argument("--max-others", type=float, default=0.15)
    parser.add_argument("--attempts", type=int, default=2)
    parser.add_argument("--quiet-wait", type=float, default=10)
    parser.add_argument("--quick", action="store_true", help="smallest sizes, 2 s runs")
    parser.add_argument("--rev", default="HEAD", help="a commit, or 'worktree'")
    parser.add_argument("--charts", default="docs", help="folder for growth-*.png ('' for none)")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument("--report", type=Path, help="only print (and chart) a --json file")
    args = parser.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        print(report(saved["machine"], saved["settings"], saved["results"]))
        if args.charts:
            for path in charts(Path(args.charts), saved["results"]):
                print(f"chart: {path}")
        return
    for name in SIZES:  # sizes given on the command line win over --quick's
        if getattr(args, name) is None:
            setattr(args, name, sizes((QUICK if args.quick else SIZES)[name]))
    if args.quick:
        args.duration, args.warmup, args.staleness_seconds, args.idle_hold = 2, 1, 3, 1
        args.attempts, args.quiet_wait = 1, 0
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts: {sorted(unknown)}")
    if (os.cpu_count() or 1) < 2:
        args.server_cpu = args.wrk_cpu = None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * max([*args.sockets, *args.idle, 0]) + 256  # the servers inherit it
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    wrk = run.ensure_wrk()
    servers.RESULTS.mkdir(exist_ok=True)
    info = machine.info(servers.ROOT)
    started = time.monotonic()
    info["loadavg_before"] = Path("/proc/loadavg").read_text().strip()
    results: dict[str, Any] = {}
    settings = vars(args) | {"json": None, "report": None}
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as folder:
        tmp = Path(folder)
        if args.rev != "worktree":
            info["commit"] = run.export_src(args.rev, tmp)
        print(f"commit {info['commit']}, {info['date']}", flush=True)
        token_file = tmp / "tokens.lua"
        run.write_tokens(token_file, run.USERS)
        steps = {
            "users": lambda: by_users(args, wrk, token_file),
            "boards": lambda: by_boards(args, wrk, token_file, tmp),
            "staleness": lambda: by_sockets(args, tmp),
            "idle": lambda: by_idle(args),
        }
        try:
            for part in parts:
                results[part] = steps[part]()
                info["finished"] = machine.info(servers.ROOT)["date"]
                info["loadavg_after"] = Path("/proc/loadavg").read_text().strip()
                if args.json:  # every finished part kept, should a later one fail
                    saved = {"machine": info, "settings": settings, "results": results}
                    args.json.write_text(json.dumps(saved, indent=2, default=str) + "\n")
        finally:
            text = report(info, settings, results)
            print(f"\n{text}\n\n(total {time.monotonic() - started:.0f} s)")
            if args.charts and results:
                for path in charts(Path(args.charts), results):
                    print(f"chart: {path}")


if __name__ == "__main__":
    main()
