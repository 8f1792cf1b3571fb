"""registration and lifecycle commands

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 20:39:00.230544
"""

import sqlalchemy as sa
from alembic import op

import lifecycle.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.Column("last_used_at", lifecycle.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )
    op.create_table(
        "service_state",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("updated_at", lifecycle.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_service_state")),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=16), server_default="push", nullable=False))

    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payload", sa.JSON(), server_default="{}", nullable=False))

    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lang", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("retracked", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("carrier_changes", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("error_code", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("first_result_at", lifecycle.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_seen_at", lifecycle.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("deleted_at", lifecycle.db.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_shipments_last_seen_at"), ["last_seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shipments_last_seen_at"))
        batch_op.drop_column("deleted_at")
        batch_op.drop_column("last_seen_at")
        batch_op.drop_column("first_result_at")
        batch_op.drop_column("error_code")
        batch_op.drop_column("carrier_changes")
        batch_op.drop_column("retracked")
        batch_op.drop_column("lang")

    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_column("payload")

    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_column("source")

    op.drop_table("service_state")
    op.drop_table("api_tokens")
