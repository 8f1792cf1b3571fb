"""normalise 17track numbers stored as pushed (trimmed, upper-case)

Pushes used to adopt numbers as 17TRACK sent them, while registration and every query upper-case
them, so a lower-case adopted number could not be found (and a later push in normal form would
have adopted it a second time). A number whose normal form is already taken by another row for the
same carrier is left as it is and logged: merging two shipments' histories is an operator's call.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 18:30:00.000000
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")
shipments = sa.table(
    "shipments",
    sa.column("id", sa.Integer),
    sa.column("provider", sa.String),
    sa.column("number", sa.String),
    sa.column("carrier", sa.Integer),
)


def upgrade() -> None:
    bind = op.get_bind()
    # Only the rows not in normal form: adopted numbers with lower case or spaces (a few, if any).
    odd = bind.execute(
        sa.select(shipments.c.id, shipments.c.number, shipments.c.carrier)
        .where(
            shipments.c.provider == "17track",
            shipments.c.number != sa.func.upper(sa.func.trim(shipments.c.number)),
        )
        .order_by(shipments.c.id)
    ).all()
    for row_id, number, carrier in odd:
        normal = number.strip().upper()
        c = shipments.c
        same = (c.provider == "17track", c.number == normal, c.carrier == carrier)
        taken = bind.execute(sa.select(c.id).where(*same)).first()
        if taken is not None:
            log.warning("17track shipment %s: %r left as is, %r/%s exists", row_id, number, normal, carrier)
            continue
        bind.execute(shipments.update().where(shipments.c.id == row_id).values(number=normal))


def downgrade() -> None:
    # The original spelling is not kept; upper-case numbers are valid under every earlier revision.
    pass
