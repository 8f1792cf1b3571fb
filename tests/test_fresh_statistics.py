"""Table statistics refreshed when a burst outgrows them (issue 11: CSV import and drain).

A young table that grows faster than autovacuum looks at it keeps the planner's estimate of an
empty table, and the import's and the drain's lookups then scanned every row once per chunk.
"""

from __future__ import annotations

import time
import uuid

from sqlalchemy import create_engine, event, text
from sqlalchemy.orm import Session

from lifecycle.sqlutil import FreshStatistics


def wait_for_modifications(engine, table: str, at_least: int) -> None:  # type: ignore[no-untyped-def]
    """The server counts changes per table from each backend's flushed statistics (within ~1 s)."""
    deadline = time.monotonic() + 60
    query = text("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = :t")
    while True:
        with engine.connect() as connection:
            if (connection.execute(query, {"t": table}).scalar() or 0) >= at_least:
                return
        assert time.monotonic() < deadline, f"{table}: the server never counted {at_least} changes"
        time.sleep(0.2)


def reltuples(engine, table: str) -> float:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": table}
        ).scalar()


def test_a_table_that_outgrew_its_statistics_is_analyzed_once(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    table = f"stats_probe_{uuid.uuid4().hex[:8]}"
    try:
        with engine.begin() as connection:
            connection.execute(text(f"CREATE TABLE {table} (id integer PRIMARY KEY)"))
            connection.execute(text(f"INSERT INTO {table} SELECT generate_series(1, 5000)"))
        wait_for_modifications(engine, table, 5000)
        assert reltuples(engine, table) == -1  # never analyzed: the planner guesses
        statistics = FreshStatistics([table, "no_such_table"], interval=0)
        assert statistics.refresh(lambda: Session(engine)) == [table]
        assert reltuples(engine, table) == 5000
        # Grown by less than it holds: left to autovacuum.
        with engine.begin() as connection:
            connection.execute(text(f"INSERT INTO {table} SELECT generate_series(5001, 7000)"))
        wait_for_modifications(engine, table, 2000)
        assert statistics.refresh(lambda: Session(engine)) == []
        # Checked at most once per interval.
        slow = FreshStatistics([table], interval=3600)
        with engine.begin() as connection:
            connection.execute(text(f"INSERT INTO {table} SELECT generate_series(7001, 20000)"))
        wait_for_modifications(engine, table, 15000)
        assert slow.refresh(lambda: Session(engine)) == [table]
        assert slow.refresh(lambda: Session(engine)) == []
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()


def test_nothing_to_do_on_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    assert FreshStatistics(["shipments"], interval=0).refresh(lambda: Session(engine)) == []
    assert statements == []  # not even a query that would fail (and be logged) on every batch
