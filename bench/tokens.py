"""Login tokens for the benchmarks' users, signed here with PyJWT as a site's backend would.

Not ``scoreboard.auth.mint``: ``run.py --rev OLD`` puts an older commit's ``src/`` first on the
path of every process it starts, and the benchmark clients must not depend on where that commit
kept its minting code.
"""

from __future__ import annotations

import time

import jwt


def mint(secret: bytes | str, user_id: str, *, ttl: int = 3600) -> str:
    now = int(time.time())
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + ttl}, secret, algorithm="HS256")
