"""The real nginx, running the project's example ``deploy/nginx.conf``, in front of test servers.

The example is the source: :func:`render` replaces only what differs on a test machine (the
upstream ports, the listen addresses and the certificate paths), and fails if any of them is not
found exactly as often as expected, so a reshaped example fails here instead of being tested
half-replaced. The file belongs in nginx's ``http`` block; :class:`Nginx` supplies that block
(temporary paths under its own prefix) and runs nginx in the foreground as one process
(``master_process off``): no daemon, no root needed, nothing written outside the prefix. The
certificate is made for ``127.0.0.1`` by ``openssl`` and is also the client's trust anchor.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests.support.server import free_port
from tests.support.timing import scaled

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
EXAMPLE_UPSTREAMS = ("server 127.0.0.1:8001 ", "server 127.0.0.1:8002 ")
EXAMPLE_CERTIFICATE = "/etc/letsencrypt/live/scores.example.com/fullchain.pem"
EXAMPLE_KEY = "/etc/letsencrypt/live/scores.example.com/privkey.pem"


def nginx_binary() -> str | None:
    """nginx's path (Debian puts it in /usr/sbin, often not on a user's PATH), or ``None``."""
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


def render(
    example: str,
    *,
    upstreams: Sequence[int],
    http_port: int,
    https_port: int,
    certificate: Path,
    key: Path,
) -> str:
    """``example`` with the test's ports and paths. The IPv6 listeners are dropped: a test
    machine may have no IPv6, and every client here uses 127.0.0.1."""
    replacements = [
        *(
            (old, f"server 127.0.0.1:{port} ")
            for old, port in zip(EXAMPLE_UPSTREAMS, upstreams, strict=True)
        ),
        ("    listen 80;\n", f"    listen 127.0.0.1:{http_port};\n"),
        ("    listen 443 ssl;\n", f"    listen 127.0.0.1:{https_port} ssl;\n"),
        ("    listen [::]:80;\n", ""),
        ("    listen [::]:443 ssl;\n", ""),
        (EXAMPLE_CERTIFICATE, str(certificate)),
        (EXAMPLE_KEY, str(key)),
    ]
    text = example
    for old, new in replacements:
        count = text.count(old)
        assert count == 1, f"deploy/nginx.conf: expected {old.strip()!r} once, found {count}"
        text = text.replace(old, new)
    return text


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``127.0.0.1`` (an IP subjectAltName) and its key."""
    certificate, key = directory / "cert.pem", directory / "key.pem"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
    subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    files = ["-keyout", str(key), "-out", str(certificate)]
    subprocess.run(
        ["openssl", "req", "-x509", *ec, *subject, *files],
        check=True,
        capture_output=True,
        timeout=scaled(30),
    )
    return certificate, key


class Nginx:
    """nginx with ``deploy/nginx.conf`` in front of ``upstreams`` (ports on 127.0.0.1), on two
    free ports: :attr:`https_url` and :attr:`http_url` (the redirect)."""

    def __init__(self, binary: str, prefix: Path, upstreams: Sequence[int]) -> None:
        self.binary = binary
        self.prefix = prefix
        self.upstreams = list(upstreams)
        self.http_port = free_port()
        self.https_port = free_port()
        self.certificate = prefix / "cert.pem"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def wss_url(self) -> str:
        return f"wss://127.0.0.1:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this nginx's certificate alone."""
        return ssl.create_default_context(cafile=str(self.certificate))

    def _write_config(self) -> Path:
        self.prefix.mkdir(parents=True, exist_ok=True)
        certificate, key = make_certificate(self.prefix)
        site = render(
            EXAMPLE.read_text(),
            upstreams=self.upstreams,
            http_port=self.http_port,
            https_port=self.https_port,
            certificate=certificate,
            key=key,
        )
        (self.prefix / "scoreboard.conf").write_text(site)
        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        temp = {kind: self.prefix / kind for kind in kinds}
        for path in temp.values():
            path.mkdir(exist_ok=True)
        main = self.prefix / "nginx.conf"
        main.write_text(
            f"""daemon off;
master_process off;
pid {self.prefix}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections 512; }}
http {{
    access_log {self.prefix}/access.log;
    client_body_temp_path {temp["client_body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    include {self.prefix}/scoreboard.conf;
}}
"""
        )
        return main

    @property
    def error_log(self) -> Path:
        return self.prefix / "error.log"

    def log(self) -> str:
        path = self.error_log
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, timeout: float = 10) -> Nginx:
        main = self._write_config()
        self.proc = subprocess.Popen(
            [self.binary, "-p", f"{self.prefix}/", "-c", str(main), "-e", str(self.error_log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + scaled(timeout)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited at start:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.https_port), timeout=1):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not listen:\n{self.log()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=scaled(10))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
