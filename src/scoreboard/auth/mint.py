"""Signing tokens: login tokens and score grants, HS256 with the service's secret (the ``token``
command, the demo, tests and benchmarks; a site's backend does the same with its own library)."""

from __future__ import annotations

import time
from typing import Any

import jwt

from scoreboard.auth.verify import GRANT_TYPE, Grant
from scoreboard.model import DEFAULT_METRIC


def mint(
    secret: bytes,
    user_id: str,
    *,
    ttl: int = 3600,
    name: str | None = None,
    audience: str | None = None,
    issuer: str | None = None,
    grant: Grant | None = None,
) -> str:
    """A signed HS256 token for ``user_id`` (the ``token`` command, tests and benchmarks); with
    ``grant``, a score grant (header ``typ`` :data:`GRANT_TYPE`, claims ``delta`` and ``act``)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl}
    headers: dict[str, Any] | None = None
    if name:
        claims["name"] = name
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    if grant is not None:
        claims["delta"] = grant.delta
        claims["act"] = grant.action_id
        if grant.metric != DEFAULT_METRIC:
            claims["metric"] = grant.metric
        headers = {"typ": GRANT_TYPE}
    return jwt.encode(claims, secret, algorithm="HS256", headers=headers)
