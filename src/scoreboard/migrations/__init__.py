"""Alembic migrations: the schema of both SQL stores (SQLite and PostgreSQL)."""
