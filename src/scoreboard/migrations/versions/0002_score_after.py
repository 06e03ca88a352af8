"""Each score event records the user's total right after it, so history is an index range read.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.add_column(sa.Column("score_after", sa.BigInteger(), nullable=True))
    # Backfill events written before this column existed: the running total per user.
    op.execute(
        "UPDATE scores SET score_after = (SELECT SUM(s2.score_delta) FROM scores s2"
        " WHERE s2.user_id = scores.user_id AND s2.score_id <= scores.score_id)"
    )
    with op.batch_alter_table("scores") as batch:
        batch.alter_column("score_after", existing_type=sa.BigInteger(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.drop_column("score_after")
