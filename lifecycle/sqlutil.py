"""Small portable SQL helpers for the two supported dialects (PostgreSQL, SQLite)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

# PostgreSQL's deadlock and serialization failures: the whole batch may simply be retried.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def insert_ignoring_conflicts(
    session: Session, model: type, rows: Sequence[dict[str, Any]], conflict_columns: Sequence[str]
) -> int:
    """INSERT … ON CONFLICT DO NOTHING, so deciding the same thing twice writes it once.

    Returns how many rows were new.
    """
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    primary_key = list(model.__table__.primary_key.columns)  # type: ignore[attr-defined]
    # The executemany form: one cached statement that SQLAlchemy pages ("insertmanyvalues"), so
    # any number of rows stays under PostgreSQL's 65,535-parameter limit and is not recompiled.
    # RETURNING counts reliably on both dialects (psycopg reports rowcount -1 here).
    stmt = insert(model).on_conflict_do_nothing(index_elements=conflict_columns).returning(*primary_key)
    return len(session.execute(stmt, [dict(row) for row in rows]).all())


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if sqlstate in RETRYABLE_SQLSTATES:
        return True
    # SQLite reports a busy database when the busy timeout ran out.
    return "database is locked" in str(exc.orig)
