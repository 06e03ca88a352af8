"""Operator controls: admin keys, the audit trail, and what moderation needs on users, events
and standings.

- ``admin_keys``: a key's name, the SHA-256 of the key (the key itself is shown once and never
  stored), when it was made, last used and revoked.
- ``audit``: append-only, one row per admin action: when, by which key (its name), the action,
  its target, the reason and details (JSON). Erasure is the one edit it ever gets: the erased
  user's id is replaced by a keyed hash in their rows.
- ``users.status`` (``active`` | ``hidden`` | ``banned``) and ``users.name_locked`` (an operator
  renamed the user: a token's ``name`` no longer replaces it).
- ``scores.source`` (``user`` | ``admin``: an adjustment) and ``scores.voided_at`` (a voided
  event counts nowhere until it is restored).
- ``standings.hidden``: why a standing is not on its board, as bits: 1, its user is hidden or
  banned (the status copied onto each of their standings, so that every read and count of a
  board filters on the board's own rows, without a join); 2, every event that made it is
  voided. 0 is shown. The row stays either way, so its ``version`` keeps rising and a rank index
  can tell a late write from the removal.

Every existing user is active, every existing event a user's and counting.

The downgrade (to 0004) refuses while moderation is in force: a hidden or banned user, a voided
event, a standing hidden by either, a locked name. 0004 has no column for any of them and would
show, count and rename them again (a voided event would even count in history but not in the
totals): an operator lifts them first (unhide, unban, restore, unlock-name; or erases the user),
and the refusal says how many of each there are. Otherwise it drops, by design: the audit, the
admin keys, and which events were adjustments (they stay as events and keep counting as they
did on ``sum`` boards). Rows of erased users were deleted by the erasure itself.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_name", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", sa.Text(), nullable=False, server_default="{}"),
    )
    op.create_index("ix_audit_target", "audit", ["target"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("status", sa.String(8), nullable=False, server_default="active"))
        batch.add_column(
            sa.Column("name_locked", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_check_constraint("ck_users_status", "status IN ('active', 'hidden', 'banned')")
    with op.batch_alter_table("scores") as batch:
        batch.add_column(sa.Column("source", sa.String(8), nullable=False, server_default="user"))
        batch.add_column(sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("standings") as batch:
        batch.add_column(sa.Column("hidden", sa.SmallInteger(), nullable=False, server_default="0"))
    # An operator lists a user's events newest first, all metrics together.
    op.create_index("ix_scores_user_id", "scores", ["user_id", "score_id"])


# What 0004 cannot represent, and what lifts it (docs/operations.md, "Upgrades").
_IN_FORCE = {
    "hidden or banned users (unhide or unban them)": (
        "SELECT COUNT(*) FROM users WHERE status <> 'active'"
    ),
    "voided events (restore them)": "SELECT COUNT(*) FROM scores WHERE voided_at IS NOT NULL",
    "standings hidden by a status or by voids": "SELECT COUNT(*) FROM standings WHERE hidden <> 0",
    "locked names (unlock-name)": "SELECT COUNT(*) FROM users WHERE name_locked",
}


class ModerationInForce(RuntimeError):
    """The downgrade would undo an operator's decision: refused, nothing changed."""


def _refuse_while_moderation_is_in_force() -> None:
    bind = op.get_bind()
    found = {
        what: int(bind.execute(sa.text(query)).scalar() or 0) for what, query in _IN_FORCE.items()
    }
    in_force = [f"{n} {what}" for what, n in found.items() if n]
    if in_force:
        raise ModerationInForce(
            "refusing to downgrade below 0005 while moderation is in force: "
            + "; ".join(in_force)
            + ". Revision 0004 cannot keep it and would show, count and rename them again."
            " Lift each through /api/admin (or erase the user), then downgrade again."
            " Nothing was changed."
        )


def downgrade() -> None:
    _refuse_while_moderation_is_in_force()
    op.drop_index("ix_scores_user_id", table_name="scores")
    with op.batch_alter_table("standings") as batch:
        batch.drop_column("hidden")
    with op.batch_alter_table("scores") as batch:
        batch.drop_column("voided_at")
        batch.drop_column("source")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("ck_users_status", type_="check")
        batch.drop_column("name_locked")
        batch.drop_column("status")
    op.drop_index("ix_audit_target", table_name="audit")
    op.drop_table("audit")
    op.drop_table("admin_keys")
