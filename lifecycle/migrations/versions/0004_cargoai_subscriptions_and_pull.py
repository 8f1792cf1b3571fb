"""cargoai subscriptions and pull

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 21:26:37.570391
"""

import sqlalchemy as sa
from alembic import op

import lifecycle.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tracking_mode", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("subscriptions", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("subscription_expires_at", lifecycle.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_polled_at", lifecycle.db.UTCDateTime(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_shipments_subscription_expires_at"), ["subscription_expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shipments_subscription_expires_at"))
        batch_op.drop_column("last_polled_at")
        batch_op.drop_column("subscription_expires_at")
        batch_op.drop_column("subscriptions")
        batch_op.drop_column("tracking_mode")
