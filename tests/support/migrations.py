"""This checkout's Alembic migrations driven from a test (to any revision, either way), and a
database described as plain values (its schema, its rows) so two states can be compared.

``scoreboard migrate`` only ever goes to the head; a migration test also goes down, with the
same scripts and the same environment (``scoreboard.migrate`` builds the config the same way).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import scoreboard.migrate
from tests.support import services
from tests.support.timing import scaled

SCRIPTS = Path(scoreboard.migrate.__file__).parent / "migrations"


def config(database_url: str) -> Config:
    """The Alembic config ``scoreboard.migrate.upgrade`` uses, for ``database_url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.set_main_option("sqlalchemy.url", scoreboard.migrate.sqlalchemy_url(database_url))
    cfg.attributes["configure_logger"] = False
    return cfg


def head() -> str:
    """The newest revision of this checkout's scripts."""
    from alembic.script import ScriptDirectory

    found = ScriptDirectory(str(SCRIPTS)).get_current_head()
    assert found is not None
    return found


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(config(database_url), revision)


def scoreboard_migrate(database_url: str, cwd: Path) -> None:
    """``python -m scoreboard migrate`` of this checkout, as an operator runs it; it must reach
    this checkout's head."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREBOARD_")}
    env["SCOREBOARD_DATABASE_URL"] = database_url
    cwd.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "scoreboard", "migrate"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=scaled(120),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert revision(database_url) == head()


@contextlib.contextmanager
def empty_database(backend: str, folder: Path) -> Iterator[str]:
    """The URL of a database with nothing in it: a SQLite file under ``folder`` (``sqlite``), or
    a PostgreSQL database of its own, dropped on exit (``postgres``)."""
    if backend == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{folder / 'previous.db'}"
    else:
        with services.postgres_database(migrate=False) as url:
            yield url


@contextlib.contextmanager
def copy_database(backend: str, database_url: str, folder: Path) -> Iterator[str]:
    """A copy of the database at ``database_url`` (nothing may be writing to it), for one test:
    the original stays as it is. On SQLite the copy is a file under ``folder``; on PostgreSQL a
    database made from it as a template, dropped on exit."""
    if backend == "sqlite":
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / "copy.db"
        source = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            source.close()
            copy.close()
        yield f"sqlite:///{target}"
    else:
        with services.postgres_database(copy_of=database_url) as url:
            yield url


def engine(database_url: str) -> sa.Engine:
    return sa.create_engine(scoreboard.migrate.sqlalchemy_url(database_url))


def revision(database_url: str) -> str:
    db = engine(database_url)
    try:
        with db.connect() as conn:
            return str(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar())
    finally:
        db.dispose()


def schema(database_url: str) -> dict[str, Any]:
    """Every table with its columns (type, nullability, default), primary key, indexes, unique,
    foreign key and check constraints, as comparable values (names included)."""
    db = engine(database_url)
    try:
        inspector = sa.inspect(db)
        tables: dict[str, Any] = {}
        for table in sorted(inspector.get_table_names()):
            tables[table] = {
                # By name: a column added back by a downgrade comes last, which no query of the
                # service can tell (none selects *).
                "columns": sorted(
                    (c["name"], str(c["type"]), c["nullable"], _default(c.get("default")))
                    for c in inspector.get_columns(table)
                ),
                "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
                "indexes": _indexes(db, table),
                "unique": sorted(
                    (
                        (u["name"], tuple(u["column_names"]))
                        for u in inspector.get_unique_constraints(table)
                    ),
                    key=_unnamed_first,
                ),
                "foreign_keys": sorted(
                    (
                        (
                            f["name"],
                            tuple(f["constrained_columns"]),
                            f["referred_table"],
                            tuple(f["referred_columns"]),
                        )
                        for f in inspector.get_foreign_keys(table)
                    ),
                    key=_unnamed_first,
                ),
                "checks": sorted(
                    (
                        (c["name"], " ".join(str(c["sqltext"]).split()))
                        for c in inspector.get_check_constraints(table)
                    ),
                    key=_unnamed_first,
                ),
            }
        return tables
    finally:
        db.dispose()


def _unnamed_first(item: tuple[Any, ...]) -> tuple[Any, ...]:
    """Sort key of a constraint: SQLite reports some without a name (None), which a plain
    sort cannot compare with a named one."""
    return (item[0] or "", *item[1:])


def rows(database_url: str, table: str, names: list[str], order_by: str) -> list[tuple[Any, ...]]:
    """The columns ``names`` of every row of ``table``, as the driver returns them (on SQLite a
    time is its stored text)."""
    db = engine(database_url)
    try:
        with db.connect() as conn:
            query = f"SELECT {', '.join(names)} FROM {table} ORDER BY {order_by}"  # noqa: S608
            return [tuple(row) for row in conn.execute(sa.text(query))]
    finally:
        db.dispose()


def columns(database_url: str, table: str) -> list[str]:
    db = engine(database_url)
    try:
        return [c["name"] for c in sa.inspect(db).get_columns(table)]
    finally:
        db.dispose()


def _default(value: object) -> str | None:
    # SQLite reflects a server default as written ('0' or 0); PostgreSQL as an expression.
    return None if value is None else str(value).strip("'")


def _indexes(db: sa.Engine, table: str) -> list[str]:
    """Each index as the database states it (reflection drops ``DESC`` on SQLite)."""
    if db.dialect.name == "sqlite":
        query = (
            "SELECT sql FROM sqlite_master"
            " WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL"
        )
    else:
        query = "SELECT indexdef FROM pg_indexes WHERE tablename = :t"
    with db.connect() as conn:
        return sorted(
            " ".join(str(r[0]).split()) for r in conn.execute(sa.text(query), {"t": table})
        )
