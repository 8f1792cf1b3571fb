"""Alembic driven from settings, so `manage.py db upgrade` needs no alembic.ini."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any fixed 64-bit number, the same on every machine: the key of the "a migration runs" lock.
ADVISORY_LOCK_KEY = 0x5B1F_0D0C_AB1E


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision`; on PostgreSQL one machine at a time (the others wait, then
    find the schema already there and do nothing), so a release step may run on every machine."""
    with _one_at_a_time(database_url):
        command.upgrade(alembic_config(database_url), revision)


@contextmanager
def _one_at_a_time(database_url: str) -> Iterator[None]:
    if not database_url.startswith("postgresql"):
        yield  # SQLite is one file on one machine; its own write lock serialises DDL
        return
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
    command.revision(alembic_config(database_url), message=message, autogenerate=True, rev_id=rev_id)
