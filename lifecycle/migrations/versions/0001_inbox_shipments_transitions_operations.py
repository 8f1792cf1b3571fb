"""inbox shipments transitions operations

Revision ID: 0001
Revises:
Create Date: 2026-11-21 20:31:30.948058
"""

import sqlalchemy as sa
from alembic import op

import lifecycle.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("processed_at", lifecycle.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbox_failed",
            ["id"],
            unique=False,
            postgresql_where=sa.text("status = 'failed'"),
            sqlite_where=sa.text("status = 'failed'"),
        )
        batch_op.create_index(
            "ix_inbox_pending",
            ["id"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )

    op.create_table(
        "shipments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("carrier", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("sub_status", sa.String(length=64), nullable=True),
        sa.Column("tracking", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=True),
        sa.Column("last_event_at", lifecycle.db.UTCDateTime(), nullable=True),
        sa.Column("last_event_description", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("registration_generation", sa.Integer(), nullable=False),
        sa.Column("registered_at", lifecycle.db.UTCDateTime(), nullable=True),
        sa.Column("stopped_at", lifecycle.db.UTCDateTime(), nullable=True),
        sa.Column("created_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments")),
        sa.UniqueConstraint(
            "provider", "number", "carrier", name=op.f("uq_shipments_provider_number_carrier")
        ),
    )
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shipments_number"), ["number"], unique=False)
        batch_op.create_index(batch_op.f("ix_shipments_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_shipments_tracking"), ["tracking"], unique=False)

    op.create_table(
        "operations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("shipment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("carrier", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.Column("claimed_at", lifecycle.db.UTCDateTime(), nullable=True),
        sa.Column("completed_at", lifecycle.db.UTCDateTime(), nullable=True),
        sa.Column("result_code", sa.Integer(), nullable=True),
        sa.Column("result_message", sa.Text(), nullable=True),
        sa.Column("created_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.id"],
            name=op.f("fk_operations_shipment_id_shipments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_operations_idempotency_key")),
    )
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_operations_ready", ["status", "provider", "kind", "next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_operations_shipment_id"), ["shipment_id"], unique=False)

    op.create_table(
        "transitions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shipment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("inbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=False),
        sa.Column("sub_status", sa.String(length=64), nullable=True),
        sa.Column("event_time", lifecycle.db.UTCDateTime(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbox_id"], ["inbox.id"], name=op.f("fk_transitions_inbox_id_inbox"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.id"],
            name=op.f("fk_transitions_shipment_id_shipments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transitions")),
        sa.UniqueConstraint("shipment_id", "dedupe_key", name=op.f("uq_transitions_shipment_id_dedupe_key")),
    )
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.create_index("ix_transitions_shipment_id_id", ["shipment_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("transitions", schema=None) as batch_op:
        batch_op.drop_index("ix_transitions_shipment_id_id")

    op.drop_table("transitions")
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operations_shipment_id"))
        batch_op.drop_index("ix_operations_ready")

    op.drop_table("operations")
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shipments_tracking"))
        batch_op.drop_index(batch_op.f("ix_shipments_status"))
        batch_op.drop_index(batch_op.f("ix_shipments_number"))

    op.drop_table("shipments")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_inbox_pending",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.drop_index(
            "ix_inbox_failed",
            postgresql_where=sa.text("status = 'failed'"),
            sqlite_where=sa.text("status = 'failed'"),
        )

    op.drop_table("inbox")
