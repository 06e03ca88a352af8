"""This checkout's Alembic migrations driven from a test (to any revision, either way), and a
database described as plain values (its schema, its rows) so two states can be compared.

``scoreboard migrate`` only ever goes to the head; a migration test also goes down, with the
same scripts and the same environment (``scoreboard.migrate`` builds the config the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

import scoreboard.migrate

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
                    (u["name"], tuple(u["column_names"]))
                    for u in inspector.get_unique_constraints(table)
                ),
                "foreign_keys": sorted(
                    (
                        f["name"],
                        tuple(f["constrained_columns"]),
                        f["referred_table"],
                        tuple(f["referred_columns"]),
                    )
                    for f in inspector.get_foreign_keys(table)
                ),
                "checks": sorted(
                    (c["name"], " ".join(str(c["sqltext"]).split()))
                    for c in inspector.get_check_constraints(table)
                ),
            }
        return tables
    finally:
        db.dispose()


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
