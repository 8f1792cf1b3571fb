"""ledger usage totals budget alerts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 21:22:33.978569
"""

import sqlalchemy as sa
from alembic import op

import lifecycle.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "budget_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("plan_period", sa.String(length=10), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("used_units", sa.Integer(), nullable=False),
        sa.Column("limit_units", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("crossed_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.Column("delivered_at", lifecycle.db.UTCDateTime(), nullable=True),
        sa.Column("delivery_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_budget_alerts")),
    )
    with op.batch_alter_table("budget_alerts", schema=None) as batch_op:
        batch_op.create_index("uq_budget_alerts_once", ["provider", "plan_period", "threshold"], unique=True)

    op.create_table(
        "usage_totals",
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=24, scale=10), nullable=False),
        sa.Column("unpriced_units", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "scope", "period", "key", name=op.f("pk_usage_totals")),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("rule_set", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("event_kind", sa.String(length=32), nullable=False),
        sa.Column("bucket", sa.String(length=16), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=24, scale=10), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("shipment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("idempotency_key", sa.String(length=240), nullable=False),
        sa.Column("event_key", sa.String(length=240), nullable=False),
        sa.Column("event_attrs", sa.JSON(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("occurred_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("plan_period", sa.String(length=10), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("corrects_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("created_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["corrects_id"], ["ledger.id"], name=op.f("fk_ledger_corrects_id_ledger")),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.id"],
            name=op.f("fk_ledger_shipment_id_shipments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_ledger_idempotency_key")),
    )
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_event_key"), ["event_key"], unique=False)
        batch_op.create_index("ix_ledger_provider_occurred_at", ["provider", "occurred_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_shipment_id"), ["shipment_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_shipment_id"))
        batch_op.drop_index("ix_ledger_provider_occurred_at")
        batch_op.drop_index(batch_op.f("ix_ledger_event_key"))

    op.drop_table("ledger")
    op.drop_table("usage_totals")
    with op.batch_alter_table("budget_alerts", schema=None) as batch_op:
        batch_op.drop_index("uq_budget_alerts_once")

    op.drop_table("budget_alerts")
