"""Board staleness on many WebSocket clients: from an update being sent to each client first
holding a board at least that new.

One asyncio process (uvloop) holds every client and also posts the updates, so send and receive
times come from one clock. Clients are plain ``asyncio.Protocol``s that read frames straight
from the byte stream (``Client``): a general WebSocket client library costs tens of microseconds
per frame here, enough to make the clients the bottleneck at 100 updates/s. This process
competes with the server for the machine's CPUs; ``--cpu`` pins it to one, ``--server-cpu``
pins the server to another.

How an update is matched to a board: the board has only ``--users`` (10) users, so every update
changes a score in the top 10 and gets exactly one ``seq``, and every user is always on the board.
For update ``(user, new_score)`` the first board any client received in which ``user`` has at
least ``new_score`` has the smallest received ``seq`` at or after the update's own. A client
first holds a board at least that new when it first receives a ``seq`` at or after that one (a
``seq`` that no client received cannot be the first one any client holds). Clients may skip
``seq``s (the server coalesces), so this is per client, with a binary search.

Rates are open loop: update ``i`` is sent at ``start + i / rate`` whatever the server does.
How late this process wakes for those sends is reported too, as a measure of its own lag.

    SCOREBOARD_JWT_SECRET=... .venv/bin/python bench/staleness.py --url http://127.0.0.1:8000
    .venv/bin/python bench/staleness.py        # starts its own service on a free port
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import contextlib
import json
import os
import random
import resource
import sys
import time
from array import array
from pathlib import Path
from typing import Any, cast

import orjson
import uvloop

import machine
import servers
import wsreader
from tokens import mint

perf = time.perf_counter


class Client(asyncio.Protocol):
    """One socket. Records, for every chunk of frames read, the newest ``seq`` and the time.

    It speaks just enough WebSocket for this: the opening handshake, then unmasked server
    frames read straight from the byte stream (text frames, pings answered with a masked pong,
    a close answered and the socket closed). A general client library costs tens of
    microseconds per frame in this process, which at 100 updates/s on 1,000 sockets made the
    clients, not the server, the bottleneck being measured.
    """

    def __init__(self, host: str, port: int, path: str, known: dict[int, bytes]) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self.known = known
        self.seqs: array[int] = array("q")
        self.times: array[float] = array("d")
        self.frames = 0
        self.buffer = bytearray()
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = perf()
        buffer = self.buffer
        buffer += data
        if not self.open.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            del buffer[: end + 4]
            if status.split(b" ")[1:2] != [b"101"]:
                self.open.set_exception(ConnectionError(f"handshake: {status!r}"))
                return
            self.open.set_result(None)
        newest, at, size = -1, 0, len(buffer)
        while size - at >= 2:
            opcode, length, start = buffer[at] & 0x0F, buffer[at + 1] & 0x7F, at + 2
            if length == 126:
                length, start = int.from_bytes(buffer[at + 2 : at + 4]), at + 4
            elif length == 127:
                length, start = int.from_bytes(buffer[at + 2 : at + 10]), at + 10
            end = start + length
            if end > size:
                break
            if opcode == 1:
                # Both SNAPSHOT and SCORE_UPDATE end with "seq":N}}: no JSON parse here.
                mark = buffer.rfind(b'"seq":', start, end)
                seq = int(buffer[mark + 6 : buffer.index(b"}", mark, end)])
                if seq not in self.known:
                    self.known[seq] = bytes(buffer[start:end])
                newest = max(newest, seq)
                self.frames += 1
            elif opcode in (8, 9):  # close: echo it and hang up; ping: pong
                self._send(opcode + 1 if opcode == 9 else 8, bytes(buffer[start:end]))
                if opcode == 8 and self.transport is not None:
                    self.transport.close()
            at = end
        del buffer[:at]
        if newest >= 0:
            self.seqs.append(newest)
            self.times.append(now)

    def _send(self, opcode: int, payload: bytes) -> None:
        """A control frame (payload under 126 bytes), masked as every client frame must be."""
        assert self.transport is not None
        assert len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open.done():
            self.open.set_exception(exc or ConnectionError("closed during the handshake"))

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else -1


class Poster:
    """Score updates over a few keep-alive HTTP/1.1 connections (a minimal client: the server's
    responses always carry Content-Length)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )
        self.writers: list[asyncio.StreamWriter] = []

    async def open(self, connections: int) -> None:
        for _ in range(connections):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self.writers.append(writer)
            self.idle.put_nowait((reader, writer))

    def close(self) -> None:
        for writer in self.writers:
            writer.close()

    async def post(self, body: bytes, address: str) -> tuple[float, int, bytes]:
        """Send one update; returns (send time, status, response body). A connection the
        server closed while idle (keep-alive timeout) is replaced and the request sent again;
        the body carries an ``action_id``, so a repeat cannot add twice."""
        reader, writer = await self.idle.get()
        try:
            try:
                return await self._exchange(reader, writer, body, address)
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                reader, writer = await asyncio.open_connection(self.host, self.port)
                self.writers.append(writer)
                return await self._exchange(reader, writer, body, address)
        finally:
            self.idle.put_nowait((reader, writer))

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        body: bytes,
        address: str,
    ) -> tuple[float, int, bytes]:
        sent = perf()
        writer.write(
            b"POST /api/scores/update HTTP/1.1\r\nHost: %s:%d\r\n"
            b"Content-Type: application/json\r\nX-Forwarded-For: %s\r\n"
            b"Content-Length: %d\r\n\r\n%s"
            % (self.host.encode(), self.port, address.encode(), len(body), body)
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return sent, status, await reader.readexactly(length)


class Run:
    def __init__(self, args: argparse.Namespace, base: str, secret: bytes) -> None:
        self.args = args
        host_port = base.removeprefix("http://").rstrip("/")
        host, _, port = host_port.partition(":")
        self.poster = Poster(host, int(port))
        self.known: dict[int, bytes] = {}
        self.clients: list[Client] | list[wsreader.Socket] = []
        self.reader: wsreader.Reader | None = None
        """``--client c``: the sockets are held by the compiled reader, not this process."""
        self.users = [f"stale-u{i}" for i in range(args.users)]
        self.tokens = {u: mint(secret, u, ttl=3600) for u in self.users}
        # One client address per user (the service trusts 127.0.0.1 as its proxy; see
        # servers.py), so per-address limits see ten players, not one flood.
        self.addresses = {u: servers.address(10_000 + i) for i, u in enumerate(self.users)}
        self.rng = random.Random(2)
        self.run_id = f"stale-{time.time_ns()}"
        self.sent = 0

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(50)
        host, port = self.poster.host, self.poster.port

        async def one() -> Client:
            async with gate:
                _, client = await loop.create_connection(
                    lambda: Client(host, port, "/ws/scoreboard", self.known), host, port
                )
                await client.open
                return client

        if self.args.client == "c":
            path, count = "/ws/scoreboard", self.args.clients
            self.reader = wsreader.Reader(host, port, path, count, self.known)
            await self.reader.start(cpu=self.args.cpu)
            self.clients = self.reader.sockets
        else:
            async with asyncio.timeout(60):
                made = await asyncio.gather(*(one() for _ in range(self.args.clients)))
            self.clients = list(made)
        await self.poster.open(self.args.http_connections)

    async def close(self) -> None:
        self.poster.close()
        if self.reader is not None:
            await self.reader.stop()
        for client in self.clients:
            if isinstance(client, Client) and client.transport is not None:
                client.transport.close()

    def frames(self) -> int:
        if self.reader is not None:
            return self.reader.frames
        return sum(c.frames for c in self.clients if isinstance(c, Client))

    def body(self, user: str) -> bytes:
        return orjson.dumps(
            {
                "user_id": user,
                "score_delta": self.rng.randint(1, 1000),
                "auth_token": self.tokens[user],
                "action_id": f"{self.run_id}-{self.sent}",
            }
        )

    async def settle(self, timeout: float = 15.0) -> int:
        """Wait (bounded) until every client holds the newest board any client holds."""
        deadline = perf() + timeout
        while perf() < deadline:
            if self.reader is not None:
                await self.reader.flush()
            newest = max(self.known, default=-1)
            if all(c.last_seq >= newest for c in self.clients):
                await asyncio.sleep(0.2)
                if self.reader is not None:
                    await self.reader.flush()
                if max(self.known, default=-1) == newest:
                    return newest
            await asyncio.sleep(0.05)
        raise TimeoutError("clients did not all catch up with the newest board")

    async def phase(self, rate: float, seconds: float) -> dict[str, Any]:
        count = int(rate * seconds)
        updates: list[tuple[float, str, int]] = []
        failures: list[int] = []
        lateness: list[float] = []
        frames_before = self.frames()
        pids = () if self.args.server_pid is None else (self.args.server_pid,)
        helpers = () if self.reader is None else (self.reader.pid,)
        meter = machine.CpuMeter(*pids, loadgen=helpers)

        async def send(user: str, body: bytes) -> None:
            async with asyncio.timeout(30):
                sent, status, answer = await self.poster.post(body, self.addresses[user])
            if status == 200:
                updates.append((sent, user, orjson.loads(answer)["new_score"]))
            else:
                failures.append(status)

        tasks = []
        start = perf() + 0.05
        for i in range(count):
            due = start + i / rate
            delay = due - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            lateness.append(perf() - due)
            user = self.users[self.sent % len(self.users)]
            tasks.append(asyncio.create_task(send(user, self.body(user))))
            self.sent += 1
        elapsed_sending = perf() - start
        await asyncio.gather(*tasks)
        await self.settle()
        cpu = meter.stop()
        frames = self.frames() - frames_before
        result = self.analyse(updates)
        lateness.sort()
        result |= {
            "rate": rate,
            "seconds": seconds,
            "updates_sent": count,
            "updates_ok": len(updates),
            "failures": failures,
            "achieved_rate": count / elapsed_sending if elapsed_sending > 0 else 0.0,
            "delivered_fraction": frames / max(1, len(updates) * len(self.clients)),
            "client_cpus": cpu["loadgen_cpus"],
            "server_cpus": cpu["server_cpus"] if pids else None,
            "others_cpus": cpu["others_cpus"] if pids else None,
            "send_lateness_p50_ms": _quantile(lateness, 0.5) * 1000,
            "send_lateness_p99_ms": _quantile(lateness, 0.99) * 1000,
        }
        return result

    def analyse(self, updates: list[tuple[float, str, int]]) -> dict[str, Any]:
        # Each user's score on every board any client received, by seq.
        boards: dict[str, tuple[list[int], list[int]]] = {u: ([], []) for u in self.users}
        exact = 0
        causes: dict[tuple[str, int], int] = {}
        for seq in sorted(self.known):
            message = orjson.loads(self.known[seq])
            data = message["data"]
            if message["type"] == "SCORE_UPDATE":
                causes[(data["user_id"], data["new_score"])] = seq
            for entry in data["rankings"]:
                if entry["user_id"] in boards:
                    seqs, scores = boards[entry["user_id"]]
                    seqs.append(seq)
                    scores.append(entry["score"])
        staleness: list[float] = []
        last_socket: list[float] = []
        per_update: list[tuple[float, float, float, float]] = []
        missing = 0
        first_sent = min((u[0] for u in updates), default=0.0)
        for sent, user, new_score in updates:
            seqs, scores = boards[user]
            at = bisect.bisect_left(scores, new_score)  # scores only rise
            if at == len(seqs):
                missing += len(self.clients)
                continue
            seq = seqs[at]
            exact += causes.get((user, new_score)) == seq
            slowest = 0.0
            mine: list[float] = []
            for client in self.clients:
                i = bisect.bisect_left(client.seqs, seq)
                if i == len(client.seqs):
                    missing += 1
                    continue
                delay = client.times[i] - sent
                mine.append(delay)
                slowest = max(slowest, delay)
            staleness.extend(mine)
            last_socket.append(slowest)
            mine.sort()
            if mine:
                # (seconds into the phase, fastest, median and slowest client), in ms
                per_update.append(
                    (
                        round(sent - first_sent, 4),
                        round(mine[0] * 1000, 2),
                        round(_quantile(mine, 0.5) * 1000, 2),
                        round(slowest * 1000, 2),
                    )
                )
        staleness.sort()
        last_socket.sort()
        return {
            "pairs": len(staleness),
            "pairs_missing": missing,
            "updates_matched_exactly": exact,
            "p50_ms": _quantile(staleness, 0.5) * 1000,
            "p90_ms": _quantile(staleness, 0.9) * 1000,
            "p99_ms": _quantile(staleness, 0.99) * 1000,
            "max_ms": (staleness[-1] if staleness else float("nan")) * 1000,
            "last_socket_p50_ms": _quantile(last_socket, 0.5) * 1000,
            "last_socket_p99_ms": _quantile(last_socket, 0.99) * 1000,
            "per_update": per_update,
        }


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(args: argparse.Namespace, base: str, secret: bytes) -> dict[str, Any]:
    run = Run(args, base, secret)
    pids = args.server_pid is not None
    try:
        await run.connect()
        print(f"{len(run.clients)} clients connected", flush=True)
        warm = await run.phase(10, 2)  # every user on the board, code paths warm
        if warm["updates_ok"] != warm["updates_sent"]:
            raise RuntimeError(f"warm-up updates failed: {warm['failures'][:5]}")
        phases = []
        for rate in args.rates:
            best: dict[str, Any] | None = None
            for attempt in range(1, args.attempts + 1):
                quiet = await asyncio.to_thread(machine.wait_quiet, timeout=args.quiet_wait)
                result = await run.phase(rate, args.seconds)
                result |= {"others_before": quiet, "attempt": attempt}
                others = result["others_cpus"] or 0.0
                if best is None or others < (best["others_cpus"] or 0.0):
                    best = result
                if others <= args.max_others or attempt == args.attempts:
                    break
                print(f"  (others used {others:.2f} CPUs at {rate}/s; measuring again)")
            assert best is not None
            result = best
            phases.append(result)
            print(
                f"{rate:>5}/s  p50 {result['p50_ms']:6.1f} ms  p99 {result['p99_ms']:6.1f} ms"
                f"  max {result['max_ms']:6.1f} ms  (all sockets: p99"
                f" {result['last_socket_p99_ms']:.1f} ms)"
                f"  frames {result['delivered_fraction']:.0%} of updates x sockets"
                f"  CPUs: client {result['client_cpus']:.2f}"
                + (
                    f" server {result['server_cpus']:.2f} others {result['others_cpus']:.2f}"
                    if pids
                    else ""
                )
                + f"  send lateness p99 {result['send_lateness_p99_ms']:.1f} ms",
                flush=True,
            )
        return {"clients": len(run.clients), "phases": phases}
    finally:
        await run.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running service (default: start one)")
    parser.add_argument("--server-pid", type=int, help="to report the server's CPU use")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument(
        "--client",
        choices=["c", "python"],
        default="c",
        help="c: every socket in one compiled process (bench/wsreader.c, built with the "
        "system cc); python: asyncio protocols in this process (the load generator becomes "
        "the limit past some thousands of frames a second)",
    )
    parser.add_argument("--users", type=int, default=10, help="at most 10: all on the board")
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 100])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--http-connections", type=int, default=16)
    parser.add_argument("--cpu", type=int, help="pin this process to this CPU")
    parser.add_argument("--server-cpu", type=int, help="pin a started server to this CPU")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument(
        "--max-others",
        type=float,
        default=0.15,
        help="a rate during which other processes used more CPUs than this is measured again",
    )
    parser.add_argument("--attempts", type=int, default=2, help="runs at most, per rate")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30,
        help="before each rate, wait up to this many seconds for other work to quiet down",
    )
    args = parser.parse_args()
    if not 1 <= args.users <= 10:
        parser.error("--users must be 1..10, so that every update changes the top 10")
    if max(args.rates) * args.seconds > 100_000:
        parser.error("at most 100,000 updates per phase")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.clients * 2 + 256  # our sockets, and the server's if we start it
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})

    if args.url:
        secret = os.environ.get("SCOREBOARD_JWT_SECRET", "").encode()
        if not secret:
            sys.exit("set SCOREBOARD_JWT_SECRET to the server's secret")
        result = uvloop.run(measure(args, args.url, secret))
    else:
        with servers.service(cpu=args.server_cpu) as server:
            args.server_pid = server.process.pid
            result = uvloop.run(measure(args, server.url, servers.SECRET.encode()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
