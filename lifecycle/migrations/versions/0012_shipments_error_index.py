"""shipments with an error: partial indexes for the admin's "has an error" filter, one per sort

Errors are rare, so without them a page of shipments with an error (newest first, perhaps with a
status too) reads a whole sort index through every shipment when few or none match: 0.4 s at
1,000,000 shipments on PostgreSQL. These hold only the rows with an error, in each order the
shipments page sorts by (newest, last event, registration), so such a page reads a few of them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 11:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

WITH_ERROR = sa.text("last_error IS NOT NULL")
SORTED_BY = {
    "ix_shipments_with_error_id": None,
    "ix_shipments_with_error_last_event_at_id": "last_event_at",
    "ix_shipments_with_error_registered_at_id": "registered_at",
}


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, column in SORTED_BY.items():
        if column is None:
            columns = ["id"]
        elif postgresql:  # as the page orders them: newest first, rows without a value last
            columns = [sa.text(f"{column} DESC NULLS LAST"), sa.text("id DESC")]
        else:
            columns = [column, "id"]
        op.create_index(name, "shipments", columns, postgresql_where=WITH_ERROR, sqlite_where=WITH_ERROR)


def downgrade() -> None:
    for name in SORTED_BY:
        op.drop_index(name, table_name="shipments")
