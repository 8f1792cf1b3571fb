"""PostgreSQL: a chunk of decided registrations stored with one COPY and one statement.

The chunk's rows are copied into a temporary table (psycopg formats COPY rows in C; binding
Python lists as array parameters cost more than the database's own work), then one statement
inserts the new shipments and, from what that INSERT returns, every `register` operation:

    WITH new AS (INSERT INTO shipments … SELECT … FROM registration_batch WHERE shipment_id IS NULL
                 RETURNING id, number, carrier)
    INSERT INTO operations … SELECT … FROM registration_batch LEFT JOIN new … ORDER BY position
    ON CONFLICT (idempotency_key) DO NOTHING

Operations keep the chunk's order (their ids follow its lines; the CSV import's two chunks stored at
once may interleave theirs), and their idempotency keys and payloads are built by the server from
the same parts kinds.registration_key and the SQLite path use.
Shipments registered again (deleted or rejected before) are reset by registration_rows beforehand and
come here with their id, for their operation only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Integer, Text, and_, bindparam, cast, column, func, literal, select, table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Insert

from lifecycle.operations.models import Operation
from lifecycle.shipments.models import Shipment
from lifecycle.sqlutil import driver_cursor

SHIPMENTS = Shipment.__table__
OPERATIONS = Operation.__table__
PROVIDER = "17track"

# ON COMMIT DROP: nothing outlives the chunk's transaction, on any pooled connection, even after a
# rollback; creating it costs about a millisecond per chunk of thousands of rows.
CREATE_BATCH = (
    "CREATE TEMPORARY TABLE registration_batch (position integer, shipment_id bigint, number text,"
    " carrier integer, tag text, lang text, generation integer) ON COMMIT DROP"
)
COPY_BATCH = (
    "COPY registration_batch (position, shipment_id, number, carrier, tag, lang, generation) FROM STDIN"
)
BATCH = table(
    "registration_batch",
    column("position", Integer),
    column("shipment_id", Integer),
    column("number", Text),
    column("carrier", Integer),
    column("tag", Text),
    column("lang", Text),
    column("generation", Integer),
)


def store(session: Session, rows: Sequence[tuple], shared: dict[str, object], now: datetime) -> None:
    """`rows` are (shipment_id or None, number, carrier, tag, lang, generation), in chunk order;
    `shared` holds the values every new shipment gets (column name -> value)."""
    with driver_cursor(session) as cursor:
        cursor.execute(CREATE_BATCH)
        with cursor.copy(COPY_BATCH) as copy:
            for position, row in enumerate(rows):
                copy.write_row((position, *row))
    params = {f"shared_{name}": value for name, value in shared.items()}
    session.execute(_STATEMENT, params | {"now": now})


PER_ROW = ("number", "carrier", "tag", "lang")
# What every new shipment of a chunk shares: the provider and every column with a Python-side
# default (the server would not fill those in); the caller gives their values.
SHARED = [SHIPMENTS.c.provider] + [
    c for c in SHIPMENTS.c if c.default is not None and c.name not in PER_ROW and not c.primary_key
]


def _new_shipments() -> Insert:
    values = [cast(bindparam(f"shared_{c.name}", type_=c.type), c.type) for c in SHARED]
    rows = select(*(cast(BATCH.c[name], SHIPMENTS.c[name].type) for name in PER_ROW), *values)
    insert = pg_insert(SHIPMENTS).from_select(
        [*PER_ROW, *(c.name for c in SHARED)], rows.where(BATCH.c.shipment_id.is_(None))
    )
    return insert.returning(SHIPMENTS.c.id, SHIPMENTS.c.number, SHIPMENTS.c.carrier)


def _statement() -> Insert:
    new = _new_shipments().cte("new")
    batch = BATCH
    joined = batch.outerjoin(
        new,
        and_(batch.c.shipment_id.is_(None), new.c.number == batch.c.number, new.c.carrier == batch.c.carrier),
    )
    now = bindparam("now", type_=OPERATIONS.c.created_at.type)
    key = func.concat(f"{PROVIDER}:register:", batch.c.number, ":", batch.c.carrier, ":", batch.c.generation)
    rows = (
        select(
            literal(PROVIDER),
            literal("register"),
            func.coalesce(batch.c.shipment_id, new.c.id),
            batch.c.number,
            batch.c.carrier,
            cast(func.json_build_object("tag", batch.c.tag, "lang", batch.c.lang), OPERATIONS.c.payload.type),
            key,
            literal("pending"),
            literal(0),
            now,
            now,
        )
        .select_from(joined)
        .order_by(batch.c.position)
    )
    names = ["provider", "kind", "shipment_id", "number", "carrier", "payload", "idempotency_key"]
    names += ["status", "attempts", "next_attempt_at", "created_at"]
    return (
        pg_insert(OPERATIONS)
        .from_select(names, rows)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )


_STATEMENT = _statement()
