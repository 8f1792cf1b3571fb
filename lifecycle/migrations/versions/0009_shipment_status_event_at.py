"""shipments.status_event_at (the time of the event that set the status) and carrier_name

A push with a status this service does not know moves `last_event_at` on but leaves the status as
it was; an older push with a known status that arrives after it must still be able to set the
status (in order it would have), so the status keeps its own watermark. Existing rows take
`last_event_at`, which is what set their status until now.

`carrier_name` keeps the carrier's display name from the pushes, for the admin console and JSON.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 19:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("shipments") as batch:
        batch.add_column(sa.Column("status_event_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("carrier_name", sa.String(64), nullable=True))
    op.execute("UPDATE shipments SET status_event_at = last_event_at")


def downgrade() -> None:
    with op.batch_alter_table("shipments") as batch:
        batch.drop_column("carrier_name")
        batch.drop_column("status_event_at")
