"""job_alerts.delivered_at / delivery_error: job alerts go to ALERT_WEBHOOK_URL like budget alerts

The sweeper posts each undelivered job alert once and retries on its next rounds until the webhook
takes it. Alerts already resolved are over: they count as delivered; open ones are sent once.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 14:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import lifecycle.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_alerts") as batch:
        batch.add_column(sa.Column("delivered_at", lifecycle.db.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("delivery_error", sa.Text(), nullable=True))
    op.execute("UPDATE job_alerts SET delivered_at = resolved_at WHERE resolved_at IS NOT NULL")
    op.create_index(
        "ix_job_alerts_undelivered",
        "job_alerts",
        ["id"],
        postgresql_where=sa.text("delivered_at IS NULL"),
        sqlite_where=sa.text("delivered_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_job_alerts_undelivered", table_name="job_alerts")
    with op.batch_alter_table("job_alerts") as batch:
        batch.drop_column("delivery_error")
        batch.drop_column("delivered_at")
