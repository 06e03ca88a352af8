"""Many boards from one score stream (issue 13): what each extra board costs an update.

Three services run side by side with the bare app, each on a fresh SQLite database, with a
boards file (``SCOREBOARD_BOARDS``) of 1, 3 or 10 boards that all read the one metric
``points``, with mixed resets (all time, daily, weekly, monthly, manual; several time zones).
Every update is a ``sum``, so it moves the user on every board, in every board's index. Each
round measures, with the same ``wrk`` settings and the same 1,000 users as ``run.py``, bare
POST, then the 1-, 3- and 10-board services; the report is the median of the rounds: updates
per second, the server's CPU time per update, and each rate against the 1-board one. Issue
13's target: 3 boards at ≥ 0.7x the 1-board rate, in the same run.

    .venv/bin/python bench/boards.py                     # about 4 minutes on a quiet machine
    .venv/bin/python bench/boards.py --rounds 1 --duration 5
    .venv/bin/python bench/boards.py --json bench/results/boards.json
    .venv/bin/python bench/boards.py --limits off        # the update limits off (servers.NO_LIMITS)
    .venv/bin/python bench/boards.py --profile bench/results/profiles   # then py-spy each

Like ``run.py``, the servers import the committed ``src/`` of ``--rev`` (default ``HEAD``), the
servers are pinned to ``--server-cpu`` and wrk to ``--wrk-cpu``, and each run records the CPU
used by other processes, waiting for a quiet second first and repeating a disturbed run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import machine
import run
import servers

TARGET = 0.7
"""3 boards fed per update: at least this share of the 1-board update rate."""

# (id, reset, timezone) in the order boards are added: the first n are a configuration of n.
BOARDS = (
    ("main", "never", "UTC"),
    ("daily", "daily", "Europe/Berlin"),
    ("weekly", "weekly", "Europe/Berlin"),
    ("monthly", "monthly", "UTC"),
    ("season", "manual", "UTC"),
    ("daily-ny", "daily", "America/New_York"),
    ("weekly-tokyo", "weekly", "Asia/Tokyo"),
    ("monthly-la", "monthly", "America/Los_Angeles"),
    ("all-time-2", "never", "UTC"),
    ("season-2", "manual", "UTC"),
)
COUNTS = (1, 3, 10)


def boards_toml(count: int) -> str:
    """A boards file of the first ``count`` boards of :data:`BOARDS`, all summing ``points``."""
    lines = []
    for board_id, reset, zone in BOARDS[:count]:
        lines += [f"[boards.{board_id}]", f'title = "{board_id}"']
        if reset != "never":
            lines += [f'reset = "{reset}"', f'timezone = "{zone}"']
        lines.append("")
    return "\n".join(lines)


def measure_all(args: argparse.Namespace, wrk: str, tmp: Path) -> dict[str, Any]:
    token_file = tmp / "tokens.lua"
    run.write_tokens(token_file, run.USERS)
    extra_env = servers.NO_LIMITS if args.limits == "off" else {}
    names = ["bare", *(f"{n} boards" for n in COUNTS)]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with contextlib.ExitStack() as stack:
        pool: dict[str, servers.Server] = {
            "bare": stack.enter_context(servers.bare(args.server_cpu))
        }
        for n in COUNTS:
            path = tmp / f"boards-{n}.toml"
            path.write_text(boards_toml(n))
            pool[f"{n} boards"] = stack.enter_context(
                servers.service(
                    cpu=args.server_cpu,
                    name=f"boards{n}",
                    SCOREBOARD_BOARDS=str(path),
                    **extra_env,
                )
            )
        warm = argparse.Namespace(
            **{**vars(args), "duration": args.warmup, "attempts": 1, "quiet_wait": 0}
        )
        for name in names:
            run.measure(wrk, warm, pool[name], "updates", token_file)
        for round_no in range(1, args.rounds + 1):
            for name in names:
                result = run.measure(wrk, args, pool[name], "updates", token_file)
                results[name].append(result)
                print(
                    f"round {round_no}  {name:9}  {result['rps']:8.0f} updates/s"
                    f"  p50 {result['p50_us'] / 1000:6.2f} ms"
                    f"  p99 {result['p99_us'] / 1000:6.2f} ms"
                    f"  non-2xx {result['non2xx']}  socket errors {result['socket_errors']}"
                    f"  server CPU {result['server_cpu_us_per_request']:.0f} µs/update"
                    f"  CPUs: server {result['server_cpus']:.2f} wrk {result['loadgen_cpus']:.2f}"
                    f" others {result['others_cpus']:.2f}",
                    flush=True,
                )
        if args.profile:
            for n in COUNTS:
                profile(args, wrk, pool[f"{n} boards"], token_file, args.profile / f"boards{n}.txt")
    summary: dict[str, Any] = {}
    for name, rs in results.items():
        summary[name] = {
            "rps": statistics.median(r["rps"] for r in rs),
            "cpu_us": statistics.median(r["server_cpu_us_per_request"] for r in rs),
            "wrk_cpus": statistics.median(r["loadgen_cpus"] for r in rs),
            "server_cpus": statistics.median(r["server_cpus"] for r in rs),
            "max_others_cpus": max(r["others_cpus"] for r in rs),
            "non2xx": sum(r["non2xx"] for r in rs),
            "runs": rs,
        }
    return summary


def profile(
    args: argparse.Namespace, wrk: str, server: servers.Server, token_file: Path, out: Path
) -> None:
    """One more wrk run of updates while ``py-spy`` samples the server (every thread, CPU
    samples only), written as collapsed stacks to ``out``; prints the functions found in the
    most samples (inclusive)."""
    spy = shutil.which("py-spy") or str(servers.VENV_BIN / "py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [spy, "record", "--threads", "--rate", "200", "--duration", str(args.duration)]
    argv += ["--format", "raw", "--output", str(out), "--pid", str(server.process.pid)]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT) as spying:
        time.sleep(1)  # py-spy attaches
        result = run.run_wrk(wrk, args, server.url, "update.lua", [str(token_file)])
        spying.wait(timeout=args.duration + 60)
    print(f"\nprofile of {server.name} ({result['rps']:.0f} updates/s under py-spy): {out}")
    print(summarize(out))


def summarize(path: Path, top: int = 30) -> str:
    """The functions in the most samples of a collapsed-stack file, with their share (idle
    pool threads left out)."""
    total = 0
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        if stack.rsplit(";", 1)[-1].startswith("_worker (concurrent/futures/thread.py"):
            continue  # a pool thread waiting for work: idle, though py-spy samples it
        total += count
        # "function (file:line)" -> "function (file)", once per sample
        seen = {re.sub(r":\d+\)$", ")", frame) for frame in stack.split(";")}
        for frame in seen:
            counts[frame] = counts.get(frame, 0) + count
    lines = [f"{total} samples; in the most samples (inclusive):"]
    for frame, count in sorted(counts.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {count / max(1, total):6.1%}  {frame}")
    return "\n".join(lines)


def report(info: dict[str, str], args: argparse.Namespace, summary: dict[str, Any]) -> str:
    one = summary["1 boards"]
    lines = [
        f"date {info['date']}, commit {info['commit']}",
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, "
        f"Linux {info['kernel']}, Python {info['python']}, {info['wrk']}",
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, POST updates from "
        f"{run.USERS} users, median of {args.rounds} rounds; update limits {args.limits}; "
        f"servers on CPU {args.server_cpu}, wrk on CPU {args.wrk_cpu}",
        "",
        "| boards fed per update | updates/s | / 1 board | server CPU per update | "
        "/ 1 board (CPU) | / bare POST | CPUs: server, wrk, others (max) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    bare = summary["bare"]
    lines.append(
        f"| bare app (POST) | {bare['rps']:,.0f} | | {bare['cpu_us']:.0f} µs | | | "
        f"{bare['server_cpus']:.2f}, {bare['wrk_cpus']:.2f}, {bare['max_others_cpus']:.2f} |"
    )
    for n in COUNTS:
        s = summary[f"{n} boards"]
        lines.append(
            f"| {n} | {s['rps']:,.0f} | {s['rps'] / one['rps']:.2f}x | {s['cpu_us']:.0f} µs | "
            f"{one['cpu_us'] / s['cpu_us']:.2f}x | {s['rps'] / bare['rps']:.1%} | "
            f"{s['server_cpus']:.2f}, {s['wrk_cpus']:.2f}, {s['max_others_cpus']:.2f} |"
        )
    three = summary["3 boards"]
    by_rate = three["rps"] / one["rps"]
    by_cpu = one["cpu_us"] / three["cpu_us"]
    verdict = "met" if by_rate >= TARGET else "MISSED"
    # The same ratios within each round (the servers measured a minute apart, not rounds apart).
    pairs = list(zip(one["runs"], three["runs"], strict=True))
    round_rate = [t["rps"] / o["rps"] for o, t in pairs]
    round_cpu = [o["server_cpu_us_per_request"] / t["server_cpu_us_per_request"] for o, t in pairs]
    lines += [
        "",
        f"3 boards / 1 board: {by_rate:.2f}x by updates/s, {by_cpu:.2f}x by server CPU per "
        f"update; target ≥ {TARGET}x: {verdict} (by rate, medians)",
        "the same within each round: by updates/s "
        + ", ".join(f"{r:.2f}x" for r in round_rate)
        + f" (median {statistics.median(round_rate):.2f}x); by server CPU per update "
        + ", ".join(f"{r:.2f}x" for r in round_cpu)
        + f" (median {statistics.median(round_cpu):.2f}x)",
        f"each extra board: about {(summary['10 boards']['cpu_us'] - one['cpu_us']) / 9:.0f} µs "
        "of server CPU per update (10 boards against 1)",
    ]
    non2xx = sum(summary[name]["non2xx"] for name in summary)
    if non2xx:
        lines.append(f"non-2xx responses (not counted): {non2xx}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per target")
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--wrk-cpu", type=int, default=0)
    parser.add_argument("--max-others", type=float, default=0.15)
    parser.add_argument("--attempts", type=int, default=3)
    parser.add_argument("--quiet-wait", type=float, default=30)
    parser.add_argument("--limits", choices=("on", "off"), default="on")
    parser.add_argument("--rev", default="HEAD", help="a commit, or 'worktree'")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    parser.add_argument("--report", type=Path, help="only print the report of a --json file")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="after the rounds, profile each service under one more run with py-spy",
    )
    args = parser.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        print(report(saved["machine"], argparse.Namespace(**saved["settings"]), saved["summary"]))
        return
    if (os.cpu_count() or 1) < 2:
        args.server_cpu = args.wrk_cpu = None
    wrk = run.ensure_wrk()
    info = machine.info(servers.ROOT)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-boards-") as folder:
        tmp = Path(folder)
        if args.rev != "worktree":
            info["commit"] = run.export_src(args.rev, tmp)
        print(f"commit {info['commit']}, {info['date']}", flush=True)
        summary = measure_all(args, wrk, tmp)
    text = report(info, args, summary)
    print(f"\n{text}\n\n(total {time.monotonic() - started:.0f} s)")
    if args.json:
        saved = {"machine": info, "settings": vars(args) | {"json": None}, "summary": summary}
        args.json.write_text(json.dumps(saved, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
