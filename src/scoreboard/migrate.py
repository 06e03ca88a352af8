"""Apply the schema migrations to a database URL (``scoreboard migrate`` and ``serve``)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

log = logging.getLogger(__name__)

_SCRIPTS = Path(__file__).parent / "migrations"


def sqlalchemy_url(database_url: str) -> str:
    """The SQLAlchemy URL for one of our URLs: the driver is chosen here, not by the user."""
    if database_url.startswith("postgresql://"):
        return "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    return database_url


def upgrade(database_url: str) -> None:
    """Bring the database at ``database_url`` to the newest schema (idempotent)."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(_config(database_url), "head")
    log.info("database schema is up to date")


def head() -> str:
    """The newest schema revision this code knows."""
    from alembic.script import ScriptDirectory

    return str(ScriptDirectory.from_config(_config(None)).get_current_head())


def is_known(revision: str) -> bool:
    """Whether ``revision`` is one of this code's (not from a newer release, nor made up)."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(_config(None)).get_revision(revision) is not None
    except CommandError:
        return False


def _config(database_url: str | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    if database_url is not None:
        config.set_main_option("sqlalchemy.url", sqlalchemy_url(database_url))
    # Alembic would otherwise reconfigure logging from an ini file; we have none.
    config.attributes["configure_logger"] = False
    return config
