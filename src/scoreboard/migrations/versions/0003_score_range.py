"""A user's total stays within ±(2^53 - 1), the largest integer every JSON reader holds exactly.

The SQLite store also checks it before writing; on PostgreSQL, where one statement applies an
update, this constraint is the check (a violation is answered as 409 score_out_of_range).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_LIMIT = 2**53 - 1


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.create_check_constraint(
            "ck_users_score_range", f"score BETWEEN {-_LIMIT} AND {_LIMIT}"
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("ck_users_score_range", type_="check")
