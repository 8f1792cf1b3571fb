"""admin users, sign-in throttle, shipment running cost, alert acknowledgement, admin list indexes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 18:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

import lifecycle.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The shipments page sorts by these, newest first, rows without a value last; PostgreSQL can then
# read a page by cursor straight from the index. SQLite takes the plain column order.
SORT_INDEXES = {
    "ix_shipments_last_event_at_id": "last_event_at",
    "ix_shipments_registered_at_id": "registered_at",
}
PREFIX_INDEX = "ix_shipments_number_prefix"


def upgrade() -> None:
    op.create_table(
        "admin_users",
        sa.Column("id", BigId, nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("session_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.Column("last_sign_in_at", lifecycle.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_users")),
        sa.UniqueConstraint("email", name=op.f("uq_admin_users_email")),
    )
    op.create_table(
        "admin_sign_in_throttle",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", lifecycle.db.UTCDateTime(), nullable=True),
        sa.Column("last_failure_at", lifecycle.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_admin_sign_in_throttle")),
    )
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cost_units", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(
            sa.Column("cost_amount", sa.Numeric(precision=24, scale=10), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("cost_currency", sa.String(length=3), nullable=True))
        # Tag search pages by id: (tag, id) serves it in order, without sorting a popular tag's rows.
        batch_op.create_index("ix_shipments_tag_id", ["tag", "id"], unique=False)
        batch_op.create_index("ix_shipments_cost_units", ["cost_units"], unique=False)
    with op.batch_alter_table("budget_alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acknowledged_at", lifecycle.db.UTCDateTime(), nullable=True))
    _backfill_costs()
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, column in SORT_INDEXES.items():
        if postgresql:
            op.create_index(name, "shipments", [sa.text(f"{column} DESC NULLS LAST"), sa.text("id DESC")])
        else:
            op.create_index(name, "shipments", [column, "id"])
    if postgresql:
        # Search by number prefix (LIKE 'RR12%'): a plain btree serves it only in the C collation.
        op.create_index(PREFIX_INDEX, "shipments", [sa.text("number varchar_pattern_ops")])


def _backfill_costs() -> None:
    """Shipments charged before this revision get their running total from the ledger, once."""
    op.execute(
        """
        UPDATE shipments SET
          cost_units = (SELECT COALESCE(SUM(l.units), 0) FROM ledger l WHERE l.shipment_id = shipments.id),
          cost_amount = (SELECT COALESCE(SUM(l.amount), 0) FROM ledger l WHERE l.shipment_id = shipments.id),
          cost_currency = (SELECT MIN(l.currency) FROM ledger l WHERE l.shipment_id = shipments.id)
        WHERE EXISTS (SELECT 1 FROM ledger l WHERE l.shipment_id = shipments.id AND l.units > 0)
        """
    )


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {PREFIX_INDEX}")
    for name in SORT_INDEXES:
        op.drop_index(name, table_name="shipments")
    with op.batch_alter_table("budget_alerts", schema=None) as batch_op:
        batch_op.drop_column("acknowledged_at")
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index("ix_shipments_cost_units")
        batch_op.drop_index("ix_shipments_tag_id")
        batch_op.drop_column("cost_currency")
        batch_op.drop_column("cost_amount")
        batch_op.drop_column("cost_units")
    op.drop_table("admin_sign_in_throttle")
    op.drop_table("admin_users")
