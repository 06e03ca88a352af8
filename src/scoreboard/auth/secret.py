"""The HS256 secret: ``SCOREBOARD_JWT_SECRET``, or one generated once in the data folder."""

from __future__ import annotations

import logging
import os
import secrets
import shlex
import stat
from pathlib import Path

from scoreboard.settings import MIN_SECRET_BYTES, Settings

log = logging.getLogger(__name__)

SECRET_FILE = "jwt_secret"  # noqa: S105 (a file name, not a secret)
"""The generated secret's file name in ``SCOREBOARD_DATA_DIR``."""
ERASURE_KEY_FILE = "erasure_key"
"""The generated erasure key's file name in ``SCOREBOARD_DATA_DIR`` (``scoreboard.moderation``:
what stands for an erased user in the audit is a hash keyed with it)."""


def load_or_create_secret(settings: Settings) -> bytes:
    """The HS256 secret: ``SCOREBOARD_JWT_SECRET`` if set, else one generated once and kept in
    the data folder with mode 0600, so ``serve`` and ``token`` agree without any set-up.

    ``ValueError`` (one line naming the file, and the fix) for a secret file that cannot be
    used: unreadable, too short, or open to group or others. The last is refused as ssh refuses
    such a private key, rather than tightened in silence: whoever could read the file can sign
    any user's tokens, whoever could write it chose the secret, and the operator must know."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value().encode()
    return _load_or_create(settings.data_dir / SECRET_FILE, "SCOREBOARD_JWT_SECRET")


def load_or_create_erasure_key(settings: Settings) -> bytes:
    """The erasure key: ``SCOREBOARD_ERASURE_KEY``, or one generated once in the data folder
    like the secret (same rules). Scaled mode: give every process the same one."""
    if settings.erasure_key is not None:
        return settings.erasure_key.get_secret_value().encode()
    return _load_or_create(settings.data_dir / ERASURE_KEY_FILE, "SCOREBOARD_ERASURE_KEY")


def _load_or_create(path: Path, variable: str) -> bytes:
    try:
        try:
            secret = _read_secret(path)
        except FileNotFoundError:
            secret = _create_secret(path, variable)
    except OSError as exc:
        raise ValueError(f"the secret file {path}: {exc.strerror or exc}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the secret in {path} is shorter than {MIN_SECRET_BYTES} bytes: delete the file to "
            f"have a new one generated, or set {variable}"
        )
    return secret


def _read_secret(path: Path) -> bytes:
    with path.open("rb") as f:
        # The mode of the file opened, not of the name: nothing can swap it in between.
        mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        if os.name == "posix" and mode & 0o077:
            raise ValueError(
                f"the secret file {path} has mode {mode:04o}, open to group or others; "
                f"make it private to its owner: chmod 600 {shlex.quote(str(path))}"
            )
        return f.read().strip()


def _create_secret(path: Path, variable: str) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return _read_secret(path)
    with os.fdopen(fd, "wb") as f:
        f.write(secret + b"\n")
    log.warning(
        "%s is not set: generated a random secret and stored it in %s "
        "(mode 0600); set %s to choose your own",
        variable,
        path,
        variable,
    )
    return secret
