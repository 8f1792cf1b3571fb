"""Declarative base, column types and the engine/session extension shared by web and workers."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, scoped_session, sessionmaker
from sqlalchemy.types import TypeDecorator

from lifecycle import sqlite_lock

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments INTEGER PRIMARY KEY columns.
BigId = BigInteger().with_variant(Integer, "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, always returns aware UTC: SQLite drops offsets, PostgreSQL keeps them."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is UTC:  # the usual case (utcnow, parsed events): no conversion to make
            return value.replace(tzinfo=None)
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _configure_sqlite(engine: Engine, writes: bool) -> None:
    """WAL for concurrent readers, and BEGIN IMMEDIATE so a claim is a single-writer section.

    An engine that only reads begins deferred transactions: it never takes the write lock, so a read
    command cannot wait behind (or hold up) a worker that is writing.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if writes:
            sqlite_lock.lock_for_writing(connection.connection.dbapi_connection)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def make_engine(url: str, *, writes: bool = True) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        connect_args: dict[str, Any] = {"timeout": 30, "check_same_thread": False}
        if writes and path and path != ":memory:":
            connect_args["factory"] = sqlite_lock.connection_factory(path)
        engine = create_engine(url, connect_args=connect_args)
        _configure_sqlite(engine, writes)
        return engine
    return create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


class Database:
    """Holds the engine and a thread-scoped session, bound to a Flask app with `init_app`."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.read_engine: Engine | None = None
        self.session: scoped_session[Session] = scoped_session(sessionmaker(expire_on_commit=False))

    def init_app(self, app: Any) -> None:
        url = app.config["DATABASE_URL"]
        self.engine = make_engine(url)
        # On SQLite, reads go through an engine that begins deferred transactions, so a read never
        # waits for (or holds) the single write lock; PostgreSQL needs no second pool for that.
        self.read_engine = make_engine(url, writes=False) if url.startswith("sqlite") else self.engine
        self.session.remove()
        self.session.configure(bind=self.engine)
        app.extensions["database"] = self

        @app.teardown_appcontext
        def _remove_session(_exc: BaseException | None) -> None:
            self.session.remove()

    def new_session(self) -> Session:
        """A session independent of the thread-scoped one (background threads, tests)."""
        return Session(self.engine, expire_on_commit=False)

    def read_session(self) -> Session:
        """A session for reading only: safe to open while another session of this thread writes."""
        return Session(self.read_engine, expire_on_commit=False)

    def dispose_after_fork(self) -> None:
        # Pooled connections must not be shared with a forked child (SQLAlchemy pooling docs).
        for engine in {self.engine, self.read_engine} - {None}:
            engine.dispose(close=False)  # type: ignore[union-attr]
