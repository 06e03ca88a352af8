"""Abuse limits over real sockets against a real server: slowloris, oversized headers, slow
bodies, WebSocket origins, socket caps, frame floods, and the request id on the log lines.

One server for the module, with small limits so each test is quick. Its trusted proxy is
127.0.0.1; a client that must be an untrusted peer connects from 127.0.0.2 (any 127.x address
is this machine). Every refusal test also checks the refused thing had no effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection

from tests.support.server import ServerProcess
from tests.support.timing import async_wait_until, scaled
from tests.support.tokens import token

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
GOOD_ORIGIN = "https://good.example"
UNTRUSTED = "127.0.0.2"


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("hardened"),
        env={
            "SCOREBOARD_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
            "SCOREBOARD_BODY_TIMEOUT": str(BODY_TIMEOUT),
            "SCOREBOARD_MAX_HEADER_BYTES": "4096",
            "SCOREBOARD_ALLOWED_ORIGINS": GOOD_ORIGIN,
            "SCOREBOARD_WS_MAX_CONNECTIONS": "3",
            "SCOREBOARD_WS_MAX_PER_ADDRESS": "2",
            "SCOREBOARD_WS_MAX_FRAMES_PER_SECOND": "5",
            "SCOREBOARD_TRUSTED_PROXIES": "127.0.0.1",
            "SCOREBOARD_LOG_FORMAT": "json",
        },
    ).start()
    yield server
    server.stop()


@pytest.fixture
async def http(hardened: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hardened.base_url, timeout=scaled(10)) as client:
        yield client
    # Leave no socket behind for the next test's caps.
    await async_wait_until(
        lambda: _no_sockets(hardened), 10, "the server to count its sockets closed"
    )


async def _no_sockets(server: ServerProcess) -> bool:
    return await _metric(server, "scoreboard_websocket_connections") == 0


async def _metric(server: ServerProcess, name: str, **labels: str) -> float:
    async with httpx.AsyncClient(timeout=scaled(10)) as client:
        text = (await client.get(server.base_url + "/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    raise AssertionError(f"no sample {name} {labels}")


# -- raw HTTP ------------------------------------------------------------------------------


def _raw(server: ServerProcess, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(
        ("127.0.0.1", server.port), timeout=scaled(10), source_address=(source, 0)
    )
    return sock


def _read_to_eof(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (the socket's timeout bounds each read)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _json_error(response: bytes, status: int, code: str) -> None:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), response[:200]
    assert b"connection: close" in head.lower()
    parsed = json.loads(body)
    assert set(parsed) == {"error", "message"}
    assert parsed["error"] == code


def test_a_client_dribbling_its_headers_is_cut_off_at_the_header_deadline(
    hardened: ServerProcess,
) -> None:
    with contextlib.closing(_raw(hardened)) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        closed = False
        # One header line every 0.2 s would keep a plain uvicorn connection open for ever.
        for i in range(int(scaled(10) / 0.2)):
            try:
                sock.sendall(f"X-Slow-{i}: y\r\n".encode())
            except OSError:  # the server closed: what we wait for
                closed = True
                break
            time.sleep(0.2)  # pacing the attack, not waiting for a condition
        response = _read_to_eof(sock)
        elapsed = time.monotonic() - started
    assert closed or response, "the server kept the connection"
    _json_error(response, 408, "request_timeout")
    assert elapsed < HEADER_TIMEOUT + scaled(3)


def test_a_connection_that_sends_nothing_is_closed_at_the_header_deadline(
    hardened: ServerProcess,
) -> None:
    with contextlib.closing(_raw(hardened)) as sock:
        started = time.monotonic()
        response = _read_to_eof(sock)
        elapsed = time.monotonic() - started
    _json_error(response, 408, "request_timeout")
    assert HEADER_TIMEOUT * 0.9 <= elapsed < HEADER_TIMEOUT + scaled(3)


def test_headers_over_the_size_cap_get_431(hardened: ServerProcess) -> None:
    with contextlib.closing(_raw(hardened)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
        response = _read_to_eof(sock)
    _json_error(response, 431, "headers_too_large")


def test_keep_alive_requests_still_work_under_the_guard(hardened: ServerProcess) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with contextlib.closing(_raw(hardened)) as sock:
        for _ in range(3):
            sock.sendall(request)
            data = b""
            while b'{"status":"ok"}' not in data:
                chunk = sock.recv(65536)
                assert chunk, "closed"
                data += chunk
            assert data.startswith(b"HTTP/1.1 200 ")


def test_a_body_dribbled_to_a_route_that_never_reads_it_is_cut_off(
    hardened: ServerProcess,
) -> None:
    """The protocol's body deadline: /healthz answers without reading the body, and a plain
    uvicorn would then keep the connection for as long as body bytes keep coming."""
    with contextlib.closing(_raw(hardened)) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        closed = False
        for _ in range(int(scaled(15) / 0.2)):
            try:
                sock.sendall(b"x")
            except OSError:
                closed = True
                break
            time.sleep(0.2)  # pacing the attack, not waiting for a condition
        response = _read_to_eof(sock)
        elapsed = time.monotonic() - started
    assert closed or response.startswith(b"HTTP/1.1 200 "), response[:100]
    assert elapsed < BODY_TIMEOUT + 1 + scaled(3)


async def test_a_slow_update_body_gets_408_and_changes_nothing(
    hardened: ServerProcess, http: httpx.AsyncClient
) -> None:
    body = json.dumps({"user_id": "slow", "score_delta": 5, "auth_token": token("slow")}).encode()
    head = (
        "POST /api/scores/update HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    before = (await http.get("/api/scores/top10")).json()
    with contextlib.closing(_raw(hardened)) as sock:
        sock.sendall(head + body[:10])  # the rest never comes
        response = await asyncio.to_thread(_read_to_eof, sock)
    _json_error(response, 408, "body_timeout")
    assert (await http.get("/api/scores/top10")).json() == before
    assert (await http.get("/api/users/slow")).status_code == 404


# -- the live channel ----------------------------------------------------------------------


async def _connect(
    server: ServerProcess,
    *,
    origin: str | None = None,
    source: str = "127.0.0.1",
    forwarded_for: str | None = None,
) -> ClientConnection:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else None
    return await websockets.connect(
        server.ws_url,
        origin=origin,  # type: ignore[arg-type]
        additional_headers=headers,
        local_addr=(source, 0),
        open_timeout=scaled(10),
    )


async def _snapshot(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(scaled(10)):
        message: dict[str, Any] = json.loads(await ws.recv())
    assert message["type"] == "SNAPSHOT"
    return message


async def _refused(status: int, code: str, **kwargs: Any) -> None:
    with pytest.raises(websockets.InvalidStatus) as caught:
        await _connect(**kwargs)
    response = caught.value.response
    assert response.status_code == status
    assert json.loads(response.body or b"{}")["error"] == code


async def test_a_socket_from_another_origin_is_refused_before_accept(
    hardened: ServerProcess, http: httpx.AsyncClient
) -> None:
    refused = await _metric(hardened, "scoreboard_websocket_refused_total", reason="origin")
    await _refused(403, "origin_not_allowed", server=hardened, origin="https://evil.example")
    assert (
        await _metric(hardened, "scoreboard_websocket_refused_total", reason="origin")
        == refused + 1
    )
    async with await _connect(hardened, origin=GOOD_ORIGIN) as ws:
        await _snapshot(ws)
    async with await _connect(hardened) as ws:  # no Origin: not a browser page
        await _snapshot(ws)


async def test_sockets_over_the_per_address_cap_are_refused_and_a_spoofed_xff_does_not_help(
    hardened: ServerProcess, http: httpx.AsyncClient
) -> None:
    first = await _connect(hardened, source=UNTRUSTED)
    second = await _connect(hardened, source=UNTRUSTED)
    try:
        await _snapshot(first)
        await _snapshot(second)
        await _refused(429, "too_many_sockets", server=hardened, source=UNTRUSTED)
        await _refused(
            429, "too_many_sockets", server=hardened, source=UNTRUSTED, forwarded_for="1.2.3.4"
        )
        await first.close()
        await async_wait_until(
            lambda: _open_is(hardened, 1), 10, "the closed socket to be released"
        )
        async with await _connect(hardened, source=UNTRUSTED) as third:
            await _snapshot(third)
    finally:
        await first.close()
        await second.close()


async def _open_is(server: ServerProcess, count: int) -> bool:
    return await _metric(server, "scoreboard_websocket_connections") == count


async def test_sockets_over_the_process_cap_are_refused(
    hardened: ServerProcess, http: httpx.AsyncClient
) -> None:
    # Behind the trusted proxy (127.0.0.1) each forwarded client is its own address.
    sockets = [await _connect(hardened, forwarded_for=f"203.0.113.{i}") for i in range(3)]
    try:
        for ws in sockets:
            await _snapshot(ws)
        await _refused(503, "too_many_sockets", server=hardened, forwarded_for="203.0.113.99")
        assert await _open_is(hardened, 3)
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_socket_flooding_frames_is_closed_with_1008(
    hardened: ServerProcess, http: httpx.AsyncClient
) -> None:
    floods = await _metric(hardened, "scoreboard_websocket_closed_total", reason="frame_flood")
    async with await _connect(hardened) as ws:
        await _snapshot(ws)
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(200):  # past the burst of 50 frames
                await ws.send("x")
        async with asyncio.timeout(scaled(10)):
            await ws.wait_closed()
        assert ws.close_code == 1008
    assert (
        await _metric(hardened, "scoreboard_websocket_closed_total", reason="frame_flood")
        == floods + 1
    )


async def test_a_few_client_frames_are_tolerated(
    hardened: ServerProcess, http: httpx.AsyncClient
) -> None:
    async with await _connect(hardened) as ws:
        await _snapshot(ws)
        for _ in range(3):
            await ws.send("ping")
        await ws.ping()  # a protocol ping is answered, the socket stays open
        async with asyncio.timeout(scaled(10)):
            await (await ws.ping())
        assert ws.close_code is None


# -- the request id ------------------------------------------------------------------------


async def test_the_request_id_is_echoed_and_on_the_audit_line(
    hardened: ServerProcess, http: httpx.AsyncClient
) -> None:
    forged = token("mallory")
    response = await http.post(
        "/api/scores/update",
        json={"user_id": "alice", "score_delta": 1, "auth_token": forged},
        headers={"X-Request-ID": "rid-e2e-42"},
    )
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "rid-e2e-42"

    def audit_lines() -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in hardened.log().splitlines() if line.startswith("{")]
        return [line for line in lines if line.get("request_id") == "rid-e2e-42"]

    await async_wait_until(
        lambda: _async(bool(audit_lines())), 10, "the audit line in the server log"
    )
    (line,) = audit_lines()
    assert line["message"] == "update rejected"
    assert line["reason"] == "wrong_user"
    assert line["client"] == "127.0.0.1"
    assert forged not in hardened.log()


async def _async(value: bool) -> bool:
    return value
