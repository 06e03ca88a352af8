"""The seed's users and scores tables, plus what the ranking rule needs.

``users.reached_seq`` is the ``score_id`` of the event that produced the current total: the
ranking tie-breaker (equal scores: who reached the score first). ``users.version`` counts the
user's applied events, so a rank index can refuse a write older than the one it holds.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants a 64-bit identity.
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("score", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("reached_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_users_rank", "users", [sa.text("score DESC"), "reached_seq"])
    op.create_table(
        "scores",
        sa.Column("score_id", _ID, primary_key=True, autoincrement=True),
        sa.Column(
            "user_id",
            sa.String(64),
            sa.ForeignKey("users.user_id", name="fk_scores_user"),
            nullable=False,
        ),
        sa.Column("score_delta", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("user_id", "action_id", name="uq_scores_user_action"),
    )
    op.create_index("ix_scores_user_created", "scores", ["user_id", "created_at"])


def downgrade() -> None:
    op.drop_table("scores")
    op.drop_table("users")
