"""``/ws`` around-me views under load: staleness of the views that changed, and the server's CPU
per update, against the same run with top-10 subscriptions only (issue 15).

Two phases on one server and one board of ``--users`` players (seeded first): ``top``, where
each of ``--sockets`` sockets holds one ``top`` subscription (limit 10), then ``around``, where
each holds ``--per-socket`` ``around`` subscriptions (radius ``--radius``) of players spread
over the board. In each, ``--rate`` updates a second (open loop) go to random players, with
small deltas, for ``--seconds``.

**Staleness of a changed view**: when a view's message shows a user who was in the view's
previous state with another score, and this process sent the update that gave them this score,
the staleness is the message's arrival minus that update's send time (the view changed because
a row in it did). Rows that entered a window by shifting name no update and are not timed;
neither are windows that only shifted. One asyncio process holds every socket and sends the
updates, so both times come from one clock; it shares the machine with the server. The update's
own commit (an fsync) is inside the figure, as it is for a page.

    .venv/bin/python bench/around.py                    # starts its own service
    .venv/bin/python bench/around.py --url http://127.0.0.1:8000 --server-pid PID
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, cast

import orjson
import uvloop

import machine
import servers
from staleness import Poster
from tokens import mint

perf = time.perf_counter


class Socket(asyncio.Protocol):
    """One ``/ws`` client: the handshake, masked text frames out, server frames in (a general
    client library would cost this process more than the server it measures)."""

    def __init__(self, host: str, port: int, on_message: Any) -> None:
        self.request = (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n\r\n"
        ).encode()
        self.on_message = on_message
        self.buffer = bytearray()
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = perf()
        self.buffer += data
        if not self.open.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in self.buffer[: self.buffer.find(b"\r\n")]:
                self.open.set_exception(RuntimeError(bytes(self.buffer[:200]).decode()))
                return
            del self.buffer[: end + 4]
            self.open.set_result(None)
        buffer = self.buffer
        at = 0
        while len(buffer) - at >= 2:
            opcode, length, start = buffer[at] & 0x0F, buffer[at + 1] & 0x7F, at + 2
            if length == 126:
                if len(buffer) - at < 4:
                    break
                length, start = int.from_bytes(buffer[at + 2 : at + 4]), at + 4
            elif length == 127:
                if len(buffer) - at < 10:
                    break
                length, start = int.from_bytes(buffer[at + 2 : at + 10]), at + 10
            if len(buffer) < start + length:
                break
            payload = bytes(buffer[start : start + length])
            at = start + length
            if opcode == 1:
                self.on_message(payload, now)
            elif opcode == 9:
                self._send(0xA, payload)
            elif opcode == 8:
                self.closed = True
        del buffer[:at]

    def _send(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        mask = os.urandom(4)
        size = len(payload)
        head = bytes([0x80 | opcode])
        if size < 126:
            head += bytes([0x80 | size])
        else:
            head += bytes([0x80 | 126]) + size.to_bytes(2)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(head + mask + masked)

    def send_json(self, message: dict[str, Any]) -> None:
        self._send(1, orjson.dumps(message))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True


class Phase:
    """One phase's sockets and what they received."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.sockets: list[Socket] = []
        self.shown: dict[tuple[int, str], dict[str, int]] = {}
        self.arrivals: list[tuple[tuple[str, int], float]] = []
        self.stale: list[float] = []
        self.unmatched = 0
        self.messages = 0
        self.snapshots = 0
        self.expected = 1 << 62
        self.all_snapshots = asyncio.Event()

    def receiver(self, number: int) -> Any:
        def on_message(payload: bytes, now: float) -> None:
            message = orjson.loads(payload)
            kind = message["type"]
            if kind not in ("snapshot", "update"):
                return
            self.messages += 1
            key = (number, message["id"])
            rows = {r["user_id"]: r["score"] for r in message["rows"]}
            before = self.shown.get(key)
            self.shown[key] = rows
            if kind == "snapshot" or before is None:
                self.snapshots += 1
                if self.snapshots >= self.expected:
                    self.all_snapshots.set()
                return
            for user, score in rows.items():
                old = before.get(user)
                if old is None or old == score:
                    continue  # not a score that changed in the window
                sent = self.run.sent_at.get((user, score))
                if sent is None:
                    self.unmatched += 1
                else:
                    self.stale.append(now - sent)
                    self.arrivals.append(((user, score), now))

        return on_message

    async def open(self, subscriptions: list[list[dict[str, Any]]]) -> None:
        loop = asyncio.get_running_loop()
        for number, subs in enumerate(subscriptions):
            _, socket = await loop.create_connection(
                lambda n=number: Socket(self.run.host, self.run.port, self.receiver(n)),  # type: ignore[misc]
                self.run.host,
                self.run.port,
            )
            sock = cast(Socket, socket)
            await sock.open
            for sub in subs:
                sock.send_json({"type": "subscribe", **sub})
            self.sockets.append(sock)
        self.expected = sum(len(s) for s in subscriptions)
        if self.snapshots < self.expected:
            try:
                await asyncio.wait_for(self.all_snapshots.wait(), 60)
            except TimeoutError:
                raise RuntimeError(
                    f"only {self.snapshots} of {self.expected} snapshots arrived"
                ) from None

    def close(self) -> None:
        for sock in self.sockets:
            if sock.transport is not None:
                sock.transport.close()


class Run:
    def __init__(self, args: argparse.Namespace, base: str, secret: bytes) -> None:
        self.args = args
        host, _, port = base.removeprefix("http://").rstrip("/").partition(":")
        self.host, self.port = host, int(port)
        self.poster = Poster(self.host, self.port)
        self.users = [f"around-u{i:05d}" for i in range(args.users)]
        self.tokens = {u: mint(secret, u, ttl=7200) for u in self.users}
        self.addresses = {u: servers.address(20_000 + i) for i, u in enumerate(self.users)}
        self.scores: dict[str, int] = {}
        self.sent_at: dict[tuple[str, int], float] = {}
        self.answered_at: dict[tuple[str, int], float] = {}
        self.rng = random.Random(15)
        self.sent = 0
        self.run_id = os.urandom(4).hex()

    async def post(self, user: str, delta: int) -> None:
        self.sent += 1
        body = orjson.dumps(
            {
                "user_id": user,
                "score_delta": delta,
                "auth_token": self.tokens[user],
                "action_id": f"{self.run_id}-{self.sent}",
            }
        )
        self.scores[user] = self.scores.get(user, 0) + delta
        # Before the send: the view may arrive before the answer does.
        self.sent_at[(user, self.scores[user])] = perf()
        _, status, answer = await self.poster.post(body, self.addresses[user])
        self.answered_at[(user, self.scores[user])] = perf()
        if status != 200:
            raise RuntimeError(f"update refused: {status} {answer[:200]!r}")

    async def seed(self) -> None:
        semaphore = asyncio.Semaphore(self.args.http_connections)

        async def one(user: str) -> None:
            async with semaphore:
                await self.post(user, self.rng.randint(1, 1000))

        await asyncio.gather(*(one(u) for u in self.users))

    async def load(self, pids: tuple[int, ...]) -> dict[str, float]:
        rate, seconds = self.args.rate, self.args.seconds
        count = int(rate * seconds)
        meter = machine.CpuMeter(*pids)
        start = perf()
        tasks = []
        for i in range(count):
            delay = start + i / rate - perf()
            if delay > 0:
                await asyncio.sleep(delay)
            user = self.rng.choice(self.users)
            tasks.append(asyncio.create_task(self.post(user, self.rng.randint(1, 20))))
        await asyncio.gather(*tasks)
        await asyncio.sleep(1.0)  # let the last views arrive
        cpu = meter.stop()
        cpu["updates"] = count
        return cpu

    async def phase(self, name: str, pids: tuple[int, ...]) -> dict[str, Any]:
        args = self.args
        phase = Phase(self)
        if name == "top":
            plan = [
                [{"id": "t", "board": "main", "view": "top", "limit": 10}]
                for _ in range(args.sockets)
            ]
        else:
            plan = [
                [
                    {
                        "id": f"a{j}",
                        "board": "main",
                        "view": "around",
                        "user_id": self.rng.choice(self.users),
                        "radius": args.radius,
                    }
                    for j in range(args.per_socket)
                ]
                for _ in range(args.sockets)
            ]
        await phase.open(plan)
        cpu = await self.load(pids)
        phase.close()
        stale = sorted(phase.stale)
        after_answer = sorted(
            now - self.answered_at[row] for row, now in phase.arrivals if row in self.answered_at
        )
        server_cpu = cpu["server_cpus"] * cpu["wall"]
        return {
            "phase": name,
            "subscriptions": sum(len(p) for p in plan),
            "updates": cpu["updates"],
            "view_messages": phase.messages - phase.snapshots,
            "changed_rows_timed": len(stale),
            "unmatched_rows": phase.unmatched,
            "staleness_ms": {
                "p50": 1000 * _quantile(stale, 0.5),
                "p99": 1000 * _quantile(stale, 0.99),
                "max": 1000 * (stale[-1] if stale else 0.0),
            },
            "after_answer_ms": {
                "p50": 1000 * _quantile(after_answer, 0.5),
                "p99": 1000 * _quantile(after_answer, 0.99),
            },
            "server_cpus": cpu["server_cpus"],
            "server_cpu_ms_per_update": 1000 * server_cpu / max(cpu["updates"], 1),
            "loadgen_cpus": cpu["loadgen_cpus"],
        }


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(args: argparse.Namespace, base: str, pid: int | None) -> dict[str, Any]:
    run = Run(args, base, servers.SECRET.encode() if args.url is None else _secret())
    await run.poster.open(args.http_connections)
    try:
        await run.seed()
        pids = (pid,) if pid is not None else ()
        results = [await run.phase("top", pids), await run.phase("around", pids)]
    finally:
        run.poster.close()
    top, around = results
    ratio = around["server_cpu_ms_per_update"] / max(top["server_cpu_ms_per_update"], 1e-9)
    return {
        "machine": machine.info(servers.ROOT),
        "args": vars(args) | {"json": str(args.json) if args.json else None},
        "phases": results,
        "cpu_per_update_around_vs_top": ratio,
    }


def _secret() -> bytes:
    secret = os.environ.get("SCOREBOARD_JWT_SECRET")
    if not secret:
        sys.exit("--url needs SCOREBOARD_JWT_SECRET, the server's secret, to sign tokens")
    return secret.encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running service (default: start one)")
    parser.add_argument("--server-pid", type=int, help="to report the server's CPU use")
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--per-socket", type=int, default=10)
    parser.add_argument("--radius", type=int, default=5)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--http-connections", type=int, default=16)
    parser.add_argument("--server-cpu", type=int, help="pin a started server to this CPU")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    args = parser.parse_args()
    if args.url is not None:
        result = uvloop.run(measure(args, args.url, args.server_pid))
    else:
        with servers.service(cpu=args.server_cpu) as server:
            result = uvloop.run(measure(args, server.url, server.process.pid))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
