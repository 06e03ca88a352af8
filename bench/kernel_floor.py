"""The kernel floor of a board fan-out: what a plain loop of non-blocking ``send`` calls of one
frame to every socket costs on this machine, and the staleness that loop alone gives.

The "server" here is this process and nothing else: a listening socket on 127.0.0.1, the
compiled reader (``wsreader.c``, raw mode: no handshake) connecting ``--sockets`` sockets to
it, then ``--rate`` rounds a second in which one WebSocket text frame of ``--frame-bytes``
(ending ``"seq":N}``, like the service's boards) is sent to every socket in a Python loop of
``socket.send``. Python's loop costs a fraction of a microsecond per socket; the rest is the
kernel's send path, which on loopback also does the receiving side's work. Staleness per socket
is the reader's receive time minus the round's start, on the same clock (CLOCK_MONOTONIC), as
``staleness.py`` measures the service: the service's staleness divided by this one is how far it
is from the floor (issue 17 asks for at most 1.5x at 10,000 sockets).

    .venv/bin/python bench/kernel_floor.py --sockets 10000 --rate 10 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import resource
import socket
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import machine
import wsreader

perf = time.perf_counter
ROOT = Path(__file__).resolve().parents[1]


def frame(seq: int, size: int) -> bytes:
    tail = b',"seq":%d}' % seq
    body = b'{"type":"BOARD","data":{"pad":"' + b"x" * max(0, size - 40 - len(tail)) + b'"}'
    payload = body + tail
    n = len(payload)
    head = bytes((0x81, n)) if n < 126 else bytes((0x81, 126)) + n.to_bytes(2, "big")
    return head + payload


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []

    def accept() -> None:
        while len(accepted) < args.sockets:
            conn, _ = listener.accept()
            accepted.append(conn)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    known: dict[int, bytes] = {}
    reader = wsreader.Reader("127.0.0.1", port, "-", args.sockets, known)
    await reader.start(cpu=args.reader_cpu)
    await asyncio.to_thread(acceptor.join, 120)
    for conn in accepted:
        conn.setblocking(False)
        # As asyncio's transports (and so the service's) do: without it, Nagle's algorithm
        # holds a frame back until the previous one is acknowledged (a first run: p99 241 ms).
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(f"{len(accepted)} sockets connected", flush=True)

    rounds = int(args.rate * args.seconds)
    starts: list[float] = []
    loops: list[float] = []
    blocked = 0
    meter = machine.CpuMeter(loadgen=(reader.pid,))
    own_before = time.process_time()
    begin = perf() + 0.1
    for i in range(rounds):
        delay = begin + i / args.rate - perf()
        if delay > 0:
            await asyncio.sleep(delay)
        data = frame(i, args.frame_bytes)
        start = perf()
        for conn in accepted:
            try:
                conn.send(data)
            except BlockingIOError:
                blocked += 1
        starts.append(start)
        loops.append(perf() - start)
    sender_cpu = time.process_time() - own_before
    await asyncio.sleep(0.5)
    await reader.flush()
    cpu = meter.stop()
    reader_cpus = cpu["loadgen_cpus"] - sender_cpu / cpu["wall"]
    await reader.stop()
    for conn in accepted:
        conn.close()
    listener.close()

    delays: list[float] = []
    last: list[float] = []
    missing = 0
    for seq, start in enumerate(starts):
        slowest = 0.0
        for sock in reader.sockets:
            at = bisect.bisect_left(sock.seqs, seq)
            if at == len(sock.seqs):
                missing += 1
                continue
            delay = sock.times[at] - start
            delays.append(delay)
            slowest = max(slowest, delay)
        last.append(slowest)
    delays.sort()
    last.sort()
    loops.sort()

    def q(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))] * 1000 if values else 0.0

    return {
        "machine": machine.info(ROOT),
        "sockets": args.sockets,
        "rate": args.rate,
        "seconds": args.seconds,
        "frame_bytes": len(frame(0, args.frame_bytes)),
        "loop_ms": {"p50": q(loops, 0.5), "p99": q(loops, 0.99), "max": loops[-1] * 1000},
        "per_send_us": statistics.median(loops) / len(accepted) * 1e6,
        "staleness_ms": {"p50": q(delays, 0.5), "p99": q(delays, 0.99)},
        "last_socket_ms": {"p50": q(last, 0.5), "p99": q(last, 0.99)},
        "blocked_sends": blocked,
        "missing": missing,
        "sender_cpus": sender_cpu / cpu["wall"],
        "reader_cpus": reader_cpus,
        "others_cpus": cpu["others_cpus"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--frame-bytes", type=int, default=700, help="about a top-10 board's")
    parser.add_argument("--cpu", type=int, default=1, help="the sending loop's CPU")
    parser.add_argument("--reader-cpu", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.sockets + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(args.sockets + 256, hard), hard))
    os.sched_setaffinity(0, {args.cpu})
    result = asyncio.run(measure(args))
    print(
        f"{result['sockets']} sockets, {result['rate']:g} rounds/s of {result['frame_bytes']} B:"
        f" loop p50 {result['loop_ms']['p50']:.1f} ms p99 {result['loop_ms']['p99']:.1f} ms"
        f" ({result['per_send_us']:.1f} µs a send); staleness p50"
        f" {result['staleness_ms']['p50']:.1f} ms p99 {result['staleness_ms']['p99']:.1f} ms,"
        f" last socket p99 {result['last_socket_ms']['p99']:.1f} ms; blocked"
        f" {result['blocked_sends']}, missing {result['missing']}; CPUs: sender"
        f" {result['sender_cpus']:.2f} reader {result['reader_cpus']:.2f} others"
        f" {result['others_cpus']:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
