"""The HTTP edge over a real socket, byte for byte: what uvicorn actually sends for a path with
a trailing slash, a HEAD request, and the API docs page."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.support.server import ServerProcess
from tests.support.timing import scaled


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("edge")).start()
    yield server
    server.stop()


def exchange(server: ServerProcess, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send one raw request (the connection closes after it); the status, headers and the
    exact bytes that followed them."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=scaled(10)) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    "request_line", ["GET /api/users/alice/ HTTP/1.1", "POST /api/scores/update/ HTTP/1.1"]
)
def test_a_trailing_slash_is_a_json_404_that_reflects_no_header(
    edge: ServerProcess, request_line: str
) -> None:
    status, headers, body = exchange(
        edge,
        f"{request_line}\r\nHost: evil.example\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    assert status == 404
    assert "location" not in headers
    assert "evil.example" not in json.dumps(headers)
    assert json.loads(body) == {"error": "not_found", "message": "there is nothing at this path"}


@pytest.mark.parametrize("path", ["/api/scores/top10", "/api/scores", "/healthz", "/readyz"])
def test_head_is_the_get_without_its_body(edge: ServerProcess, path: str) -> None:
    def ask(method: str) -> tuple[int, dict[str, str], bytes]:
        return exchange(
            edge, f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )

    head_status, head_headers, head_body = ask("HEAD")
    get_status, get_headers, get_body = ask("GET")
    assert head_status == get_status == 200
    assert head_body == b""
    assert int(head_headers["content-length"]) == len(get_body) > 0
    assert head_headers["content-type"] == get_headers["content-type"]
