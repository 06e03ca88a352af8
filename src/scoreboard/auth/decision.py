"""The authorization decision for one update: which token kind the mode wants, and what it allows.

``SCOREBOARD_AUTH_MODE``:

- ``user`` (default): the token proves who the user is (its ``sub`` must equal ``user_id``) and
  the client chooses the delta within the configured range. A score grant is refused here, so a
  grant leaked to a browser cannot be used as a login token.
- ``grant``: the token is a score grant minted by the site's backend after it verified the
  action. The request's ``user_id``, ``score_delta`` and ``action_id`` (when given) must equal the
  grant's ``sub``, ``delta`` and ``act``; the update is applied under ``act`` as its idempotency
  key, so a replayed grant returns the current result and adds nothing (the store treats a
  repeated ``(user_id, action_id)`` with the same delta as a retry). A login token is refused.

Every refusal is ``Unauthorized`` (401) and happens before anything is written. The first is
of the token's shape: a compact JWS (``header.payload.signature``, base64url) of at most
``TOKEN_MAX`` characters, as the OpenAPI document says; the bound keeps any body that document
calls valid within the default body limit, so a valid request is never a 413.
"""

from __future__ import annotations

import re
from typing import Literal

from scoreboard.auth.verify import GRANT_TYPE, TokenVerifier
from scoreboard.errors import Unauthorized
from scoreboard.model import ScoreUpdate

AuthMode = Literal["user", "grant"]

TOKEN_MAX = 12 * 1024
TOKEN_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"  # noqa: S105 (a shape, not a secret)
_TOKEN_RE = re.compile(TOKEN_PATTERN)


async def identify(verifier: TokenVerifier, token: str) -> str:
    """The user a login token proves (``me`` subscriptions of ``/ws``), checked as an update's
    token is in ``user`` mode, whatever the mode: the shape, the signature and claims, and a
    score grant refused. ``Unauthorized`` otherwise (its message never quotes the token)."""
    _check_shape(token)
    identity = await verifier.verify(token)
    if identity.grant is not None:
        raise Unauthorized("a score grant is not a login token", code="grant_not_accepted")
    return identity.user_id


def _check_shape(token: str) -> None:
    if len(token) > TOKEN_MAX or _TOKEN_RE.fullmatch(token) is None:
        raise Unauthorized(
            f"the token must be a JWT (three base64url parts joined by dots) of at most "
            f"{TOKEN_MAX} characters",
            code="token_invalid",
        )


async def authorize(
    verifier: TokenVerifier, mode: AuthMode, token: str, update: ScoreUpdate
) -> ScoreUpdate:
    """The update to apply on behalf of ``token``, or ``Unauthorized``. ``update`` is the
    request's, already validated; the result carries the token's display name and, in grant
    mode, the grant's action id."""
    _check_shape(token)
    identity = await verifier.verify(token)
    grant = identity.grant
    if mode == "grant":
        if grant is None:
            raise Unauthorized(
                f"a score grant (JOSE header typ '{GRANT_TYPE}') is required",
                code="grant_required",
            )
        if identity.user_id != update.user_id:
            raise Unauthorized("the grant is for another user", code="wrong_user")
        if grant.delta != update.delta:
            raise Unauthorized("score_delta differs from the grant's delta", code="grant_mismatch")
        if update.action_id is not None and update.action_id != grant.action_id:
            raise Unauthorized("action_id differs from the grant's act", code="grant_mismatch")
        if update.metric != grant.metric:
            raise Unauthorized(
                "metric differs from the grant's metric (absent: points)", code="grant_mismatch"
            )
        return ScoreUpdate(
            update.user_id, grant.delta, grant.action_id, identity.name, metric=grant.metric
        )
    if grant is not None:
        raise Unauthorized("a score grant is not a login token", code="grant_not_accepted")
    if identity.user_id != update.user_id:
        raise Unauthorized("the token is for another user", code="wrong_user")
    return ScoreUpdate(
        update.user_id, update.delta, update.action_id, identity.name, metric=update.metric
    )
