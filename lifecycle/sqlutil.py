"""Small portable SQL helpers for the two supported dialects (PostgreSQL, SQLite)."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Column, ColumnElement, Table, TypeDecorator, any_, bindparam, text
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

# PostgreSQL's deadlock and serialization failures: the whole batch may simply be retried.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})

_PG_DIALECT = postgresql.psycopg.dialect()
log = logging.getLogger(__name__)


def insert_ignoring_conflicts(
    session: Session, model: type, rows: Sequence[dict[str, Any]], conflict_columns: Sequence[str]
) -> int:
    """INSERT … ON CONFLICT DO NOTHING, so deciding the same thing twice writes it once.

    Returns how many rows were new.
    """
    if not rows:
        return 0
    table: Table = model.__table__  # type: ignore[attr-defined]
    if is_psycopg(session) and _unnest_friendly(table):
        return len(_pg_unnest_insert(session, table, rows, tuple(conflict_columns)))
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    primary_key = list(table.primary_key.columns)
    # The executemany form: one cached statement that SQLAlchemy pages ("insertmanyvalues"), so
    # any number of rows stays under PostgreSQL's 65,535-parameter limit and is not recompiled.
    # RETURNING counts reliably on both dialects (psycopg reports rowcount -1 here).
    stmt = insert(model).on_conflict_do_nothing(index_elements=conflict_columns).returning(*primary_key)
    return len(session.execute(stmt, [dict(row) for row in rows]).all())


def insert_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """A plain multi-row INSERT: on PostgreSQL one fixed statement over arrays, else executemany."""
    if not rows:
        return
    if is_psycopg(session) and _unnest_friendly(table):
        _pg_unnest_insert(session, table, rows, None)
    else:
        session.execute(table.insert(), [dict(row) for row in rows])


def is_psycopg(session: Session) -> bool:
    dialect = session.get_bind().dialect
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


@functools.cache
def _unnest_friendly(table: Table) -> bool:
    # unnest() flattens nested arrays: array columns take the portable way.
    return not any(isinstance(c.type, sqltypes.ARRAY) for c in table.columns)


def _pg_unnest_insert(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], conflict: tuple[str, ...] | None
) -> list[tuple[Any, ...]]:
    """`INSERT … SELECT FROM unnest(arrays)`: the SQL text depends only on the table and the columns
    given, never on the number of rows, so psycopg prepares it once instead of parsing a new
    multi-row VALUES list every batch. Python-side column defaults are filled in as SQLAlchemy
    would; one array per column keeps any batch far under the 65,535-parameter limit. Arrays are
    sent in binary (`%b`): nothing to quote or escape."""
    given = tuple(sorted({key for row in rows for key in row}))
    sql, columns = _unnest_sql(table, given, conflict)
    arrays = [_column_array(column, rows) for column in columns]
    with driver_cursor(session) as cursor:
        cursor.execute(sql, arrays)
        return cursor.fetchall()


def update_by_id(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Set each row's given columns (every row gives the same ones, its id among them). On PostgreSQL
    (psycopg) one `UPDATE … FROM unnest(arrays)`, a statement prepared once; else executemany."""
    if not rows:
        return
    if not is_psycopg(session):
        stmt = table.update().where(table.c.id == bindparam("_id"))
        params = [{"_id": row["id"]} | {k: v for k, v in row.items() if k != "id"} for row in rows]
        session.execute(stmt, params)
        return
    sql, columns = _unnest_update_sql(table, tuple(rows[0]))
    arrays = [_column_array(column, rows) for column in columns]
    with driver_cursor(session) as cursor:
        cursor.execute(sql, arrays)


@functools.cache
def _unnest_update_sql(table: Table, given: tuple[str, ...]) -> tuple[str, list[Column]]:
    quote = _PG_DIALECT.identifier_preparer.quote
    columns = [table.c.id, *(c for c in table.columns if c.name in given and c.name != "id")]
    arrays = ", ".join(f"%b::{_array_type(c)}[]" for c in columns)
    names = ", ".join(quote(c.name) for c in columns)
    sets = ", ".join(f"{quote(c.name)} = given.{quote(c.name)}" for c in columns[1:])
    sql = (
        f"UPDATE {quote(table.name)} SET {sets} FROM unnest({arrays}) AS given({names})"
        f" WHERE {quote(table.name)}.id = given.id"
    )
    return sql, columns


@contextmanager
def driver_cursor(session: Session) -> Iterator[Any]:
    """A psycopg cursor in the session's transaction, for fixed statements psycopg prepares once.

    The driver's errors come out as SQLAlchemy's (OperationalError for a deadlock or a lost
    connection, IntegrityError, …), as from session.execute(), so callers classify one kind."""
    if session.autoflush:  # what session.execute() would do first: pending ORM changes go before
        session.flush()
    connection = session.connection()
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor:
            yield cursor
    except Exception as exc:
        import psycopg

        if not isinstance(exc, psycopg.Error):
            raise
        raise DBAPIError.instance(
            "(a fixed statement on the driver cursor)", None, exc, psycopg.Error, dialect=connection.dialect
        ) from exc


@functools.cache
def _unnest_sql(
    table: Table, given: tuple[str, ...], conflict: tuple[str, ...] | None
) -> tuple[str, list[Column]]:
    columns = [c for c in table.columns if c.name in given or _python_default(c)]
    arrays = ", ".join(f"%b::{_array_type(c)}[]" for c in columns)
    quote = _PG_DIALECT.identifier_preparer.quote
    names = ", ".join(quote(c.name) for c in columns)
    primary_key = ", ".join(quote(c.name) for c in table.primary_key.columns)
    sql = f"INSERT INTO {quote(table.name)} ({names}) SELECT * FROM unnest({arrays})"
    if conflict is not None:
        sql += f" ON CONFLICT ({', '.join(quote(name) for name in conflict)}) DO NOTHING"
    return f"{sql} RETURNING {primary_key}", columns


def _python_default(column: Column) -> bool:
    default = column.default
    return default is not None and (default.is_scalar or default.is_callable)  # type: ignore[attr-defined]


def _array_type(column: Column) -> str:
    # JSON values travel as their text and are cast by the server, as SQLAlchemy's JSON type does.
    return column.type.compile(dialect=_PG_DIALECT)


def _column_array(column: Column, rows: Sequence[dict[str, Any]]) -> list[Any]:
    """One column's values over the rows, as the driver binds them (defaults filled, types applied)."""
    name, convert = column.name, _converter(column)
    if _python_default(column):
        default = column.default
        fill = default.arg if default.is_callable else (lambda _context, value=default.arg: value)  # type: ignore[union-attr]
        values = [row[name] if name in row else fill(None) for row in rows]
    else:
        values = [row.get(name) for row in rows]
    return values if convert is None else [convert(value) for value in values]


@functools.cache
def _converter(column: Column) -> Callable[[Any], Any] | None:
    """How a column's values are bound (None: as they are). Decided once per column, not per cell:
    a batch binds thousands of cells."""
    kind = column.type
    if isinstance(kind, TypeDecorator):  # UTCDateTime: its own fast path for times already in UTC
        return functools.partial(kind.process_bind_param, dialect=_PG_DIALECT)
    if isinstance(kind, sqltypes.JSON):
        # none_as_null is off on our JSON columns: None is stored as JSON null, as SQLAlchemy does.
        return json.dumps
    return None


def one_of(session: Session, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN (values)`. On PostgreSQL `column = ANY(array)`: one statement text whatever the
    number of values, so neither SQLAlchemy, psycopg nor the server parses a new one each batch."""
    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    # SQLite reports a busy database when the busy timeout ran out.
    return "database is locked" in str(exc.orig)


class FreshStatistics:
    """ANALYZE the given tables whenever more of their rows changed since the last ANALYZE than the
    planner thinks they hold (PostgreSQL's own count, `n_mod_since_analyze`, shared by every process).

    The planner plans by statistics that autovacuum refreshes a minute or more after a table
    changes. A burst that doubles a table in between (a CSV import, a backlog of pushes drained into
    a young database) leaves the planner thinking the table is small, and it then picks plans that
    scan every row: the import's lookup of a chunk's numbers, and the drain's lookup of a batch's
    shipments, scanned the whole table once per chunk or batch. Refreshing whenever a table has
    doubled costs a logarithmic number of ANALYZEs, each sampling a fixed number of rows, far fewer
    than autovacuum itself runs later. Checked at most once per `interval` seconds per process; one
    process at a time analyzes (the others skip); a failure is logged and ignored. Nothing on SQLite.
    """

    FLOOR = 1000  # smaller tables are scanned fast whatever the plan

    def __init__(self, tables: Sequence[str], interval: float = 1.0) -> None:
        self.tables = tuple(tables)
        self.interval = interval
        self._checked_at = -interval

    def refresh(self, session_factory: Callable[[], Session]) -> list[str]:
        """Analyze what outgrew its statistics; returns the tables analyzed."""
        now = time.monotonic()
        if now - self._checked_at < self.interval:
            return []
        self._checked_at = now
        try:
            with session_factory() as session:
                if session.get_bind().dialect.name != "postgresql":
                    return []
                return self._analyze_outgrown(session)
        except DBAPIError as exc:  # only the plans suffer: never the work that asked
            log.warning("could not refresh table statistics: %s", exc)
            return []

    def _analyze_outgrown(self, session: Session) -> list[str]:
        outgrown = list(session.scalars(_OUTGROWN, {"names": list(self.tables), "floor": self.FLOOR}))
        if outgrown and session.scalar(
            text("SELECT pg_try_advisory_xact_lock(hashtext('lifecycle:analyze'))")
        ):
            for name in outgrown:  # ANALYZE, unlike VACUUM, may run inside a transaction
                session.execute(text(f"ANALYZE {_PG_DIALECT.identifier_preparer.quote(name)}"))
            session.commit()
            return outgrown
        return []


_OUTGROWN = text(
    "SELECT s.relid::regclass::text FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
    " WHERE s.relid::regclass::text IN :names AND s.n_mod_since_analyze > greatest(c.reltuples, 0) + :floor"
).bindparams(bindparam("names", expanding=True))
