"""Checkpoints for reading the past fast (issue 16, ``past.py``), and the index they replay by.

- ``checkpoints``: a board's standings in one period as the keeper found them, up to ``at``
  (the latest ``created_at`` of the board's metric in the period then) and through event
  ``through`` (every event of the metric up to it was counted; none after it was). The board's
  shape (``metric``, ``aggregate``, ``ord``) is kept so that a board reconfigured since does not
  use it; ``audit_mark`` is the last audit entry then (moderation after it is replayed);
  ``bound_*`` the key of the last row kept (``NULL``: every row was kept).
- ``checkpoint_rows``: the first rows of that ranking (shown or not), as in ``standings``.
- ``checkpoint_late``: users with an event committed after the checkpoint but dated before
  its ``at`` (another process's clock a moment behind), found by the keeper's next turn.
- ``checkpoint_marks``: one row, the last event id the keeper has looked at for such events.
- ``ix_scores_metric_created``: the events of a metric by time, for the replay after ``at``.

All of it is derived (the ledger stays the truth), so the downgrade drops it and loses nothing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.String(32)
_BIG = sa.BigInteger()


def upgrade() -> None:
    op.create_index("ix_scores_metric_created", "scores", ["metric", "created_at"])
    op.create_table(
        "checkpoints",
        sa.Column("id", _BIG.with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("board_id", _ID, nullable=False),
        sa.Column("period_id", sa.String(16), nullable=False),
        sa.Column("metric", _ID, nullable=False),
        sa.Column("aggregate", sa.String(8), nullable=False),
        sa.Column("ord", sa.String(8), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("through", _BIG, nullable=False),
        sa.Column("audit_mark", _BIG, nullable=False),
        sa.Column("bound_rank_score", _BIG, nullable=True),
        sa.Column("bound_reached", _BIG, nullable=True),
        sa.Column("bound_user", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_checkpoints_board", "checkpoints", ["board_id", "period_id", "at"])
    op.create_index("ix_checkpoints_metric", "checkpoints", ["metric", "at"])
    op.create_table(
        "checkpoint_rows",
        sa.Column("checkpoint_id", _BIG, primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("score", _BIG, nullable=False),
        sa.Column("rank_score", _BIG, nullable=False),
        sa.Column("reached", _BIG, nullable=False),
        sa.Column("hidden", sa.SmallInteger(), nullable=False),
    )
    op.create_index("ix_checkpoint_rows_user", "checkpoint_rows", ["user_id"])
    op.create_table(
        "checkpoint_late",
        sa.Column("checkpoint_id", _BIG, primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_checkpoint_late_user", "checkpoint_late", ["user_id"])
    op.create_table(
        "checkpoint_marks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("through", _BIG, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("checkpoint_marks")
    op.drop_index("ix_checkpoint_late_user", table_name="checkpoint_late")
    op.drop_table("checkpoint_late")
    op.drop_index("ix_checkpoint_rows_user", table_name="checkpoint_rows")
    op.drop_table("checkpoint_rows")
    op.drop_index("ix_checkpoints_metric", table_name="checkpoints")
    op.drop_index("ix_checkpoints_board", table_name="checkpoints")
    op.drop_table("checkpoints")
    op.drop_index("ix_scores_metric_created", table_name="scores")
