"""Tokens for tests, signed with the test servers' secret (or forged on purpose)."""

from __future__ import annotations

import time
from typing import Any

import jwt

from tests.support.server import SECRET


def token(user_id: str, *, ttl: int = 3600, secret: str = SECRET, **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")
