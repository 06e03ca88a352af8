"""A real webhook receiver on 127.0.0.1 (``http.server`` on a thread of its own), for the
webhook tests: it records every request (headers and body as received) and answers what the
test tells it to (``fail``: that many 500s first; ``status``: the answer after them).

Usable from in-process tests and across processes (a server started by an e2e test posts to
it like to any endpoint).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many senders at once (the default backlog is 5)
    daemon_threads = True


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: str

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)

    def verify(self, secret: str) -> Any:
        """The payload, once the library has verified the signature with ``secret``
        (``standardwebhooks.WebhookVerificationError`` otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.fail = 0
        """Answer this many requests 500 before the next answers ``status``."""
        self.status = 200
        self.location: str | None = None
        self.hang = threading.Event()
        """While set, a request is recorded and then left unanswered (until cleared, or the
        sender goes away): a sender killed mid-send."""
        self._released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length).decode()
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    if receiver.fail > 0:
                        receiver.fail -= 1
                        status = 500
                    else:
                        status = receiver.status
                if receiver.hang.is_set():
                    receiver._released.wait(timeout=30)
                    return
                self.send_response(status)
                if receiver.location is not None:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def of(self, event: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.json()["type"] == event]

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    @contextlib.contextmanager
    def running(self) -> Iterator[Receiver]:
        self._thread.start()
        try:
            yield self
        finally:
            self._released.set()
            self._server.shutdown()
            self._server.server_close()


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    with Receiver().running() as running:
        yield running
