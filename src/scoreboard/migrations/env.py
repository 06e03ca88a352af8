"""Alembic environment: runs the migrations on the URL ``scoreboard.migrate`` hands over.

On PostgreSQL several processes may start at once (``serve`` on many machines), each running the
migrations first. A transaction-scoped advisory lock, taken before Alembic reads the current
revision, makes them take turns: the first applies, the others then find the schema current.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

# Any constant shared by every process of the deployment ("scoreboa" in ASCII).
_MIGRATION_LOCK = 0x73636F7265626F61

url = context.config.get_main_option("sqlalchemy.url")
assert url is not None

if context.is_offline_mode():
    context.configure(url=url, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, render_as_batch=url.startswith("sqlite"))
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                    )
                context.run_migrations()
    finally:  # a migration that fails (a refused downgrade) leaves no connection open either
        engine.dispose()
