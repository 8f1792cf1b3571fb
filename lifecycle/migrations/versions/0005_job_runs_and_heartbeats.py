"""job runs, heartbeats, job alerts and inbox retries

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 18:20:00.000000
"""

import sqlalchemy as sa
from alembic import op

import lifecycle.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", BigId, nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("started_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", lifecycle.db.UTCDateTime(), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("dry_run", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
    )
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.create_index("ix_job_runs_job_id", ["job", "id"], unique=False)

    op.create_table(
        "heartbeats",
        sa.Column("id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("beat_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_heartbeats")),
        sa.UniqueConstraint("kind", "name", name=op.f("uq_heartbeats_kind_name")),
    )
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_heartbeats_beat_at"), ["beat_at"], unique=False)

    op.create_table(
        "job_alerts",
        sa.Column("id", BigId, nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("raised_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.Column("resolved_at", lifecycle.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_job_alerts_key")),
    )
    op.create_table(
        "inbox_retries",
        sa.Column("inbox_id", BigId, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_retried_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbox_id"], ["inbox.id"], name=op.f("fk_inbox_retries_inbox_id_inbox"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("inbox_id", name=op.f("pk_inbox_retries")),
    )


def downgrade() -> None:
    op.drop_table("inbox_retries")
    op.drop_table("job_alerts")
    with op.batch_alter_table("heartbeats", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_heartbeats_beat_at"))
    op.drop_table("heartbeats")
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_job_runs_job_id")
    op.drop_table("job_runs")
