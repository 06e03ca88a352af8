"""Boards: events name their metric; standings per (board, period, user); periods; the applied
board configuration.

Before this revision the users table was the one board: ``users.score`` the total, ``version``
and ``reached_seq`` its index bookkeeping. Now score events are the truth and every board is a
view of a stream of them:

- ``scores.metric``: the stream an event belongs to; every existing event is ``points``.
- ``totals``: each user's running sum per metric (``scores.score_after`` of the next event is
  read from it under the row's lock) and the time of their last event of it, so that the
  events of one user and metric are in time order in lock order; existing users get their
  ``points`` total.
- ``standings``: a user's aggregate on one board in one period, with the event that reached it
  (the tie-breaker) and a version for the rank index; ``rank_score`` is the score in rank order
  (negated on boards where higher is better), so one ascending index serves every board.
  Existing totals become board ``main``, period ``all``.
- ``periods``: the periods each board has had (a manual board's current season is the one with
  no ``ends_at``); ``main``/``all`` exists.
- ``board_config``: the configuration every process must serve (JSON), stored by the first
  ``serve`` or by ``scoreboard boards apply``.

``users`` keeps the profile (id, name, times); its score columns go.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_LIMIT = 2**53 - 1
_ID = sa.String(64)


def upgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.add_column(
            sa.Column("metric", _ID, nullable=False, server_default="points"),
        )
    op.drop_index("ix_scores_user_created", table_name="scores")
    op.create_index("ix_scores_user_metric_created", "scores", ["user_id", "metric", "created_at"])

    op.create_table(
        "totals",
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.user_id"), primary_key=True),
        sa.Column("metric", _ID, primary_key=True),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(f"total BETWEEN {-_LIMIT} AND {_LIMIT}", name="ck_totals_range"),
    )
    op.create_table(
        "standings",
        sa.Column("board_id", _ID, primary_key=True),
        sa.Column("period_id", sa.String(16), primary_key=True),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.user_id"), primary_key=True),
        sa.Column("score", sa.BigInteger(), nullable=False),
        sa.Column("rank_score", sa.BigInteger(), nullable=False),
        sa.Column("reached", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"score BETWEEN {-_LIMIT} AND {_LIMIT}", name="ck_standings_range"),
    )
    op.create_index(
        "ix_standings_rank", "standings", ["board_id", "period_id", "rank_score", "reached"]
    )
    op.create_table(
        "periods",
        sa.Column("board_id", _ID, primary_key=True),
        sa.Column("period_id", sa.String(16), primary_key=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "board_config",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )

    # Today's one board becomes board "main", period "all": totals and standings from users.
    op.execute(
        "INSERT INTO totals (user_id, metric, total, last_at)"
        " SELECT user_id, 'points', score, updated_at FROM users"
    )
    op.execute(
        "INSERT INTO standings (board_id, period_id, user_id, score, rank_score, reached, version,"
        " updated_at) SELECT 'main', 'all', user_id, score, -score, reached_seq, version,"
        " updated_at FROM users WHERE version > 0"
    )
    op.execute("INSERT INTO periods (board_id, period_id) VALUES ('main', 'all')")

    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("ck_users_score_range", type_="check")
    op.drop_index("ix_users_rank", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("score")
        batch.drop_column("version")
        batch.drop_column("reached_seq")


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("score", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(
            sa.Column("reached_seq", sa.BigInteger(), nullable=False, server_default="0")
        )
    # users.updated_at was the time of the user's last update; since 0004 it only moves on a
    # rename, and the standing holds the time of the last update: the later of the two.
    op.execute(
        "UPDATE users SET score = s.score, version = s.version, reached_seq = s.reached,"
        " updated_at = CASE WHEN s.updated_at > users.updated_at THEN s.updated_at"
        " ELSE users.updated_at END"
        " FROM standings s WHERE s.board_id = 'main' AND s.period_id = 'all'"
        " AND s.user_id = users.user_id"
    )
    op.create_index("ix_users_rank", "users", [sa.text("score DESC"), "reached_seq"])
    with op.batch_alter_table("users") as batch:
        batch.create_check_constraint(
            "ck_users_score_range", f"score BETWEEN {-_LIMIT} AND {_LIMIT}"
        )
    op.drop_table("board_config")
    op.drop_table("periods")
    op.drop_index("ix_standings_rank", table_name="standings")
    op.drop_table("standings")
    op.drop_table("totals")
    op.drop_index("ix_scores_user_metric_created", table_name="scores")
    op.create_index("ix_scores_user_created", "scores", ["user_id", "created_at"])
    with op.batch_alter_table("scores") as batch:
        batch.drop_column("metric")
