"""Soak: ten minutes of mixed load on one embedded server, its memory sampled every 10 s.

Load (all on 127.0.0.1, open loop): ``--updates`` score updates per second from 1,000 users,
``--reads`` top-10 reads per second, and ``--sockets`` live-channel clients that stay connected
and answer pings (the ``websockets`` sans-I/O protocol under a plain ``asyncio.Protocol``, so
2,000 clients cost this process little). Every 10 s the server's resident memory (``VmRSS``) is
sampled. The verdict compares memory after the warm-up (first ``--warmup`` seconds) with the
end: growth should stay within a few MB. Not run in CI; the result goes to docs/reliability.md.

    .venv/bin/python bench/soak.py                       # 10 minutes
    .venv/bin/python bench/soak.py --seconds 60 --sockets 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

import httpx
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.server import ServerProcess
from tests.support.tokens import token


class Socket(asyncio.Protocol):
    def __init__(self, uri: str) -> None:
        self.protocol = ClientProtocol(parse_uri(uri), max_size=None)
        self.transport: asyncio.Transport | None = None
        self.frames = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if type(event) is Frame and event.opcode is Opcode.TEXT:
                self.frames += 1
        self._flush()  # pongs

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def soak(args: argparse.Namespace, server: ServerProcess) -> dict[str, object]:
    assert server.proc is not None
    pid = server.proc.pid
    loop = asyncio.get_running_loop()
    sockets: list[Socket] = []
    for _ in range(args.sockets):
        _, sock = await loop.create_connection(
            lambda: Socket(server.ws_url), "127.0.0.1", server.port
        )
        sockets.append(sock)
    http = httpx.AsyncClient(
        base_url=server.base_url, timeout=10, limits=httpx.Limits(max_connections=64)
    )
    users = [f"soak{i}" for i in range(1000)]
    tokens = {u: token(u, ttl=3 * 3600) for u in users}
    statuses: Counter[str] = Counter()
    samples: list[tuple[float, int]] = []
    pending: set[asyncio.Task[None]] = set()
    start = time.monotonic()

    async def update(i: int) -> None:
        user = users[(i * 7919) % len(users)]
        body = {"user_id": user, "score_delta": 1 + i % 50, "auth_token": tokens[user]}
        try:
            r = await http.post("/api/scores/update", json=body)
            statuses[f"update {r.status_code}"] += 1
        except httpx.HTTPError:
            statuses["update error"] += 1

    async def read() -> None:
        try:
            r = await http.get("/api/scores/top10")
            statuses[f"read {r.status_code}"] += 1
        except httpx.HTTPError:
            statuses["read error"] += 1

    def spawn(coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        pending.add(task)
        task.add_done_callback(pending.discard)

    next_sample = start
    i = r = 0
    tick = 1 / max(args.updates, args.reads, 1)
    while (now := time.monotonic()) - start < args.seconds:
        if now >= next_sample:
            samples.append((round(now - start), rss_kib(pid)))
            print(f"{now - start:6.0f} s  rss {samples[-1][1] / 1024:7.1f} MB  {dict(statuses)}")
            next_sample += 10
        # Open loop, but with a cap on requests in flight: past it a request is counted as
        # skipped (this client fell behind) rather than queued on the connection pool, whose
        # waiting grows superlinearly with thousands of queued requests.
        due = int((now - start) * args.updates)
        while i < due:
            if len(pending) < args.inflight:
                spawn(update(i))
            else:
                statuses["update skipped"] += 1
            i += 1
        while r < int((now - start) * args.reads):
            if len(pending) < args.inflight:
                spawn(read())
            else:
                statuses["read skipped"] += 1
            r += 1
        await asyncio.sleep(tick)
    await asyncio.gather(*pending, return_exceptions=True)
    samples.append((round(time.monotonic() - start), rss_kib(pid)))
    await http.aclose()
    alive = sum(1 for s in sockets if not s.closed)
    frames = sum(s.frames for s in sockets)
    for s in sockets:
        if s.transport is not None:
            s.transport.close()
    after_warmup = [kib for t, kib in samples if t >= args.warmup]
    return {
        "samples_kib": samples,
        "statuses": dict(statuses),
        "sockets_alive_at_end": alive,
        "frames_received": frames,
        "rss_after_warmup_mb": round(after_warmup[0] / 1024, 1) if after_warmup else None,
        "rss_end_mb": round(samples[-1][1] / 1024, 1),
        "rss_growth_after_warmup_mb": round((samples[-1][1] - after_warmup[0]) / 1024, 1)
        if after_warmup
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--warmup", type=float, default=60)
    parser.add_argument("--updates", type=float, default=50, help="updates per second")
    parser.add_argument("--reads", type=float, default=50, help="top-10 reads per second")
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--inflight", type=int, default=128, help="most requests in flight")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="sb-soak-") as tmp:
        server = ServerProcess(Path(tmp) / "s", {"SCOREBOARD_WS_MAX_CONNECTIONS": "100000"})
        server.start()
        try:
            result = asyncio.run(soak(args, server))
        finally:
            proc = server.proc
            exited = None if proc is None else proc.poll()
            if exited is not None:  # the server died during the run: say how
                print(f"server exited with {exited} during the run; its log ends:")
                print("\n".join(server.log().splitlines()[-40:]))
            server.stop()
        result["server_exit_during_run"] = exited
    result["commit"] = commit
    result["args"] = vars(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
