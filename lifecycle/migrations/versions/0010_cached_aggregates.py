"""cached_aggregates: the overview's shipment counts, stored by beat instead of counted per page load

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

import lifecycle.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cached_aggregates",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("computed_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_cached_aggregates")),
    )


def downgrade() -> None:
    op.drop_table("cached_aggregates")
