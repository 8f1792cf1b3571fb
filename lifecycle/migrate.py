"""Alembic driven from settings, so `manage.py db upgrade` needs no alembic.ini; and the check that a
database is at the revision this code expects, cheap enough for every command's start.

Alembic is imported only to migrate: reading a database's revision is one query, and the code's own
head is the highest-numbered file in migrations/versions (one linear history, ids = file prefixes;
tests/test_cli_schema.py holds Alembic's own answer to the same).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
NOT_MIGRATED = "the database is not migrated yet: run `manage.py db upgrade` (or start `manage.py run`)"
# Any fixed 64-bit number, the same on every machine: the key of the "a migration runs" lock.
ADVISORY_LOCK_KEY = 0x5B1F_0D0C_AB1E


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`; on PostgreSQL one machine at a time (the others wait, then
    find the schema already there and do nothing), so a release step may run on every machine."""
    from alembic import command

    with _one_at_a_time(database_url):
        command.upgrade(alembic_config(database_url), revision)


@contextmanager
def _one_at_a_time(database_url: str) -> Iterator[None]:
    if not database_url.startswith("postgresql"):
        yield  # SQLite is one file on one machine; its own write lock serialises DDL
        return
    from sqlalchemy import text

    from lifecycle.db import make_engine

    # A session-level advisory lock on a connection of its own, held while Alembic works on another.
    engine = make_engine(database_url)
    try:
        # Autocommit: no transaction is left open (idle_in_transaction_session_timeout would end it).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
    finally:
        engine.dispose()


def revision(database_url: str, message: str, rev_id: str | None = None) -> None:
    """Autogenerate a migration (developers: against a database at head)."""
    from alembic import command

    command.revision(alembic_config(database_url), message=message, autogenerate=True, rev_id=rev_id)


def head_revision() -> str:
    """The revision this code expects: the newest migration file's id."""
    ids = [name.split("_", 1)[0] for name in os.listdir(MIGRATIONS / "versions") if name.endswith(".py")]
    return max(i for i in ids if i.isdigit())


def current_revision(database_url: str) -> str | None:
    """The database's Alembic revision; None when it was never migrated (no file, no table).

    A SQLite file that does not exist is not created: a read command must leave no empty database
    behind for the next `db upgrade` to wonder about.
    """
    if database_url.startswith("sqlite"):
        return _sqlite_revision(database_url.split("///", 1)[-1])
    from sqlalchemy import text
    from sqlalchemy.exc import ProgrammingError

    from lifecycle.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except ProgrammingError as exc:
        if "alembic_version" in str(exc.orig):
            return None
        raise
    finally:
        engine.dispose()


def _sqlite_revision(path: str) -> str | None:
    import sqlite3

    if path in ("", ":memory:") or not os.path.exists(path):
        return None
    connection = sqlite3.connect(path, timeout=30)
    try:
        found = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
        ).fetchone()
        if not found:
            return None
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None
    finally:
        connection.close()


def schema_problem(database_url: str) -> str | None:
    """Why this code cannot use the database as it is, in one line with what to do; None if it can."""
    current, head = current_revision(database_url), head_revision()
    if current == head:
        return None
    if current is None:
        return NOT_MIGRATED
    if current.isdigit() and int(current) < int(head):
        return f"the database is at {current}, this code expects {head}: run `manage.py db upgrade`"
    return (
        f"the database is at {current}, which this code does not know (it expects {head}): "
        "the database was migrated by a newer version; run that version, or a backup from before"
    )
