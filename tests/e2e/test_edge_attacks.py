"""Attacks on the server edge, each against a real ``scoreboard serve`` as an outsider would make
them (issue "Harden the server edge"): a ping flood, connections held open past their answer,
spoofed ``X-Forwarded-For``, malformed requests and refused sockets that must not write ERROR
lines. Each would succeed against the code before the fix; the floods also show that the rest
of the service stays responsive while they run.

The server runs without ``SCOREBOARD_TRUSTED_PROXIES``: every client here is a loopback peer,
and none of them may choose its own address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import websockets
from websockets.frames import Frame, Opcode

from tests.support.server import ServerProcess
from tests.support.timing import async_wait_until, scaled
from tests.support.tokens import token

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
ORIGIN = "https://good.example"
RESPONSIVE = 0.1
"""Another client's reads are answered within this while an attack runs (see assert_responsive)."""


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("edge"),
        env={
            "SCOREBOARD_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "SCOREBOARD_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "SCOREBOARD_WS_MAX_FRAMES_PER_SECOND": "10",
            "SCOREBOARD_WS_MAX_PER_ADDRESS": "4",
            "SCOREBOARD_RATE_LIMIT_IP": "10/minute",
            "SCOREBOARD_ALLOWED_ORIGINS": ORIGIN,
            # SCOREBOARD_TRUSTED_PROXIES unset: no peer is a proxy.
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture
async def http(edge: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge.base_url, timeout=scaled(10)) as client:
        yield client


def _raw(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=scaled(10))


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closes ``sock`` (reading and dropping anything it sends);
    fails if it is still open after ``seconds``."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        raise AssertionError(f"the connection was still open after {seconds:.1f} s") from None
    except ConnectionResetError:
        pass
    return time.monotonic() - started


async def _reads(http: httpx.AsyncClient, until: asyncio.Event) -> list[float]:
    """Reads the top 10 every 20 ms until ``until`` is set; each answer's time, in seconds."""
    times: list[float] = []
    while not until.is_set():
        started = time.perf_counter()
        response = await http.get("/api/scores/top10")
        assert response.status_code == 200
        times.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)  # pacing the probe
    return times


def assert_responsive(times: list[float], during: str) -> None:
    """Another client was served while the attack ran: nine reads in ten within
    :data:`RESPONSIVE`, and none slower than five times that (before the fences, one read
    took 5.2 s). Nine in ten, not all: on a 2-CPU machine running the server, the attacker and
    this probe, a lone read can wait a scheduler slice or two (187 ms once in CI) whatever the
    server does."""
    assert len(times) >= 5, f"only {len(times)} reads during {during}"
    ordered = sorted(times)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    shown = f"p90 {p90 * 1000:.0f} ms, slowest {ordered[-1] * 1000:.0f} ms of {len(times)}"
    assert p90 < scaled(RESPONSIVE), f"reads during {during}: {shown}"
    assert ordered[-1] < scaled(5 * RESPONSIVE), f"reads during {during}: {shown}"


# -- connections held past their answer ----------------------------------------------------


def test_a_body_byte_sent_after_the_answer_does_not_hold_the_connection(
    edge: ServerProcess,
) -> None:
    with contextlib.closing(_raw(edge)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n")
        assert _read_response(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"x")  # the body, after the answer: plain uvicorn then arms no timer
        elapsed = _closed_within(sock, HEADER_TIMEOUT + scaled(3))
    assert elapsed < HEADER_TIMEOUT + scaled(2)


def test_the_rest_of_a_refused_oversized_body_does_not_hold_the_connection(
    edge: ServerProcess,
) -> None:
    with contextlib.closing(_raw(edge)) as sock:
        sock.sendall(
            b"POST /api/scores/update HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 20000\r\n\r\n"
        )
        response = _read_response(sock)
        assert response.startswith(b"HTTP/1.1 413 ")
        sock.sendall(b"x" * 20000)  # the whole body, after the 413
        _closed_within(sock, HEADER_TIMEOUT + scaled(3))


def test_a_chunked_body_finished_after_the_413_does_not_hold_the_connection(
    edge: ServerProcess,
) -> None:
    with contextlib.closing(_raw(edge)) as sock:
        sock.sendall(
            b"POST /api/scores/update HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"4e20\r\n" + b"x" * 20000 + b"\r\n"
        )
        assert _read_response(sock).startswith(b"HTTP/1.1 413 ")
        sock.sendall(b"0\r\n\r\n")  # the last chunk, after the 413
        _closed_within(sock, HEADER_TIMEOUT + scaled(3))


async def test_many_held_connections_are_all_closed_and_others_are_served_meanwhile(
    edge: ServerProcess, http: httpx.AsyncClient
) -> None:
    def hold() -> float:
        with contextlib.closing(_raw(edge)) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n")
            _read_response(sock)
            sock.sendall(b"x")
            return _closed_within(sock, HEADER_TIMEOUT + scaled(5))

    done = asyncio.Event()
    probe = asyncio.create_task(_reads(http, done))
    try:
        waits = await asyncio.gather(*(asyncio.to_thread(hold) for _ in range(50)))
    finally:
        done.set()
    assert max(waits) < HEADER_TIMEOUT + scaled(3)
    assert_responsive(await probe, "50 held connections")


# -- the live channel ----------------------------------------------------------------------


async def test_a_live_socket_outlives_every_http_deadline(edge: ServerProcess) -> None:
    """The HTTP deadlines end with the upgrade: a quiet socket is not an idle connection."""
    async with websockets.connect(edge.ws_url, open_timeout=scaled(10)) as ws:
        await asyncio.wait_for(ws.recv(), scaled(10))
        with pytest.raises(TimeoutError):  # nothing to receive: the board does not change
            await asyncio.wait_for(ws.recv(), HEADER_TIMEOUT + BODY_TIMEOUT + 2.5)
        assert ws.close_code is None
        pong = await ws.ping()
        await asyncio.wait_for(pong, scaled(5))


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1])


async def test_a_ping_flood_is_closed_with_1008_memory_stays_flat_and_others_are_served(
    edge: ServerProcess, http: httpx.AsyncClient
) -> None:
    assert edge.proc is not None
    rss_before = _rss_kib(edge.proc.pid)
    done = asyncio.Event()
    probe = asyncio.create_task(_reads(http, done))
    try:
        attacker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.attacks",
            "ping-flood",
            edge.ws_url,
            "3",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(attacker.communicate(), scaled(30))
    finally:
        done.set()
    times = await probe
    codes = json.loads(out)
    assert codes
    assert set(codes) == {1008}
    assert_responsive(times, "the ping flood")
    assert _rss_kib(edge.proc.pid) - rss_before < 50 * 1024


async def test_a_message_in_4096_one_byte_fragments_is_closed_with_1008(
    edge: ServerProcess,
) -> None:
    async with websockets.connect(edge.ws_url, open_timeout=scaled(10)) as ws:
        await asyncio.wait_for(ws.recv(), scaled(10))
        fragments = [Frame(Opcode.TEXT, b"a", fin=False)]
        fragments += [Frame(Opcode.CONT, b"a", fin=False)] * 4094
        fragments.append(Frame(Opcode.CONT, b"a", fin=True))
        ws.transport.write(b"".join(f.serialize(mask=True, extensions=[]) for f in fragments))
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.wait_closed(), scaled(5))
        assert ws.close_code == 1008


# -- addresses come from the socket, not from headers --------------------------------------


async def test_a_spoofed_x_forwarded_for_gets_no_fresh_rate_limit_key(
    edge: ServerProcess, http: httpx.AsyncClient
) -> None:
    statuses = []
    for i in range(15):
        response = await http.post(
            "/api/scores/update",
            json={"user_id": f"xff{i}", "score_delta": 1, "auth_token": token(f"xff{i}")},
            headers={"X-Forwarded-For": f"198.51.100.{i}"},
        )
        statuses.append(response.status_code)
    assert statuses.count(200) <= 10
    assert statuses[-1] == 429

    def audit_clients() -> set[str]:
        return {
            part.split("=", 1)[1]
            for line in edge.log().splitlines()
            if "update rejected" in line
            for part in line.split()
            if part.startswith("client=")
        }

    await async_wait_until(
        lambda: _true(bool(audit_clients())), 10, "the rejected updates' audit lines"
    )
    assert audit_clients() == {"127.0.0.1"}  # never the header's text


async def test_a_spoofed_x_forwarded_for_opens_no_sockets_past_the_address_cap(
    edge: ServerProcess,
) -> None:
    opened: list[websockets.ClientConnection] = []
    statuses: list[int] = []
    try:
        for i in range(10):
            try:
                opened.append(
                    await websockets.connect(
                        edge.ws_url,
                        additional_headers={"X-Forwarded-For": f"198.51.100.{i}"},
                        open_timeout=scaled(10),
                    )
                )
            except websockets.InvalidStatus as refused:
                statuses.append(refused.response.status_code)
        assert len(opened) == 4  # SCOREBOARD_WS_MAX_PER_ADDRESS
        assert statuses == [429] * 6
    finally:
        for ws in opened:
            await ws.close()


# -- every answer is JSON, and no client can write an ERROR line ---------------------------


def test_a_malformed_request_gets_the_json_error_body(edge: ServerProcess) -> None:
    with contextlib.closing(_raw(edge)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        response = _read_response(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body)["error"] == "invalid_http"


def test_a_handshake_with_two_origin_headers_gets_the_json_error_body(edge: ServerProcess) -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    with contextlib.closing(_raw(edge)) as sock:
        sock.sendall(
            (
                "GET /ws/scoreboard HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: {ORIGIN}\r\nOrigin: https://evil.example\r\n"
                "\r\n"
            ).encode()
        )
        response = _read_response(sock)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in head.lower()
    parsed = json.loads(body)
    assert set(parsed) == {"error", "message"}


async def test_refused_sockets_write_no_error_line(edge: ServerProcess) -> None:
    for origin in ("https://evil.example",) * 3:
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(edge.ws_url, origin=origin, open_timeout=scaled(10))  # type: ignore[arg-type]
    held = [await websockets.connect(edge.ws_url, open_timeout=scaled(10)) for _ in range(4)]
    try:
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(edge.ws_url, open_timeout=scaled(10))  # over the cap
    finally:
        for ws in held:
            await ws.close()

    def refusals() -> int:
        return edge.log().count("socket refused")

    await async_wait_until(lambda: _true(refusals() >= 4), 10, "the refusals to be logged")
    errors = [line for line in edge.log().splitlines() if " ERROR " in line]
    assert errors == []


async def _true(value: bool) -> bool:
    return value


def test_the_server_has_written_no_error_line_at_all(edge: ServerProcess) -> None:
    """Last in the module: after every attack above, not one ERROR line."""
    assert [line for line in edge.log().splitlines() if " ERROR " in line] == []
    assert os.path.getsize(edge.log_path) > 0
