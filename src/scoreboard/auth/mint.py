"""Signing tokens: login tokens and score grants, HS256 with the service's secret (the ``token``
command, the demo, tests and benchmarks). The claims are written once, in ``scoreboard.client``
(``mint_token``, ``mint_grant``), which a site's backend uses too."""

from __future__ import annotations

from scoreboard.auth.verify import Grant
from scoreboard.client import mint_grant, mint_token


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
    """A signed HS256 token for ``user_id``; with ``grant``, a score grant (header ``typ``
    :data:`~scoreboard.auth.verify.GRANT_TYPE`, claims ``delta``, ``act`` and, for another
    metric than ``points``, ``metric``)."""
    if grant is None:
        return mint_token(secret, user_id, ttl=ttl, name=name, audience=audience, issuer=issuer)
    return mint_grant(
        secret,
        user_id,
        grant.delta,
        grant.action_id,
        metric=grant.metric,
        name=name,
        ttl=ttl,
        audience=audience,
        issuer=issuer,
    )
