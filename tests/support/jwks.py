"""Asymmetric keys for tests, tokens signed with them (or forged on purpose), and a JWKS document
served from 127.0.0.1 by a local HTTP server (the only address a test may talk to)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from scoreboard.auth.verify import GRANT_TYPE

ISSUER = "https://login.example"
AUDIENCE = "scoreboard"


@dataclass(frozen=True)
class KeyPair:
    kid: str
    algorithm: str
    private: Any

    @property
    def public(self) -> Any:
        return self.private.public_key()

    def public_pem(self) -> bytes:
        return bytes(
            self.public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def jwk(self, **extra: Any) -> dict[str, Any]:
        exporter: Any = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}[
            self.algorithm
        ]
        value: dict[str, Any] = exporter.to_jwk(self.public, as_dict=True)
        return {**value, "kid": self.kid, "use": "sig", **extra}

    def write_pem(self, folder: Path) -> Path:
        path = folder / f"{self.kid}.pem"
        path.write_bytes(self.public_pem())
        return path

    def sign(
        self,
        claims: dict[str, Any],
        *,
        headers: dict[str, Any] | None = None,
        algorithm: str | None = None,
        kid: Any = "<own>",
    ) -> str:
        """``claims`` signed with this private key; the header gets ``kid`` unless told."""
        header = dict(headers or {})
        if kid == "<own>":
            header.setdefault("kid", self.kid)
        elif kid is not None:
            header["kid"] = kid
        return jwt.encode(
            claims, self.private, algorithm=algorithm or self.algorithm, headers=header
        )


@cache
def rsa_key(kid: str = "rsa-1") -> KeyPair:
    return KeyPair(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@cache
def ec_key(kid: str = "ec-1") -> KeyPair:
    return KeyPair(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


@cache
def ed_key(kid: str = "ed-1") -> KeyPair:
    return KeyPair(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def claims(sub: Any = "alice", ttl: int = 3600, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + ttl, "iss": ISSUER, "aud": AUDIENCE, **extra}


def grant_claims(sub: str, delta: Any, act: Any, ttl: int = 300, **extra: Any) -> dict[str, Any]:
    return claims(sub, ttl, delta=delta, act=act, **extra)


GRANT_HEADER = {"typ": GRANT_TYPE}


# -- tokens made by hand, so that any header (even a lying one) can be produced ----------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def hmac_signed(header: dict[str, Any], payload: dict[str, Any], key: bytes) -> str:
    """HS256 over any header, keyed with any bytes (e.g. the text of a public key)."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def unsigned(alg: str, payload: dict[str, Any], **header: Any) -> str:
    return f"{segment({'alg': alg, 'typ': 'JWT', **header})}.{segment(payload)}."


# -- the key server ----------------------------------------------------------------------------


@dataclass
class KeyServer:
    """Serves ``documents[path]`` (JSON) on 127.0.0.1 and records every path asked for."""

    documents: dict[str, Any] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    status: int = 200
    raw: bytes | None = None
    """When set, served as is instead of the documents (e.g. an oversized body)."""
    port: int = 0

    def url(self, path: str = "/jwks.json") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def count(self, path: str = "/jwks.json") -> int:
        return self.requests.count(path)


def jwks(*pairs: KeyPair, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"keys": [pair.jwk() for pair in pairs] + list(extra or [])}


@cache
def _lock() -> threading.Lock:
    return threading.Lock()


def serve_keys() -> Iterator[KeyServer]:
    """A generator for a fixture: a started :class:`KeyServer`, shut down afterwards."""
    state = KeyServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with _lock():
                state.requests.append(self.path)
            if state.raw is not None:
                body = state.raw
            elif self.path in state.documents and state.status == 200:
                body = json.dumps(state.documents[self.path]).encode()
            else:
                self.send_response(404 if state.status == 200 else state.status)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
