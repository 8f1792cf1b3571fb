"""The migrated schema and the models agree on the shipments table's indexes, so `alembic revision
--autogenerate` does not propose dropping the indexes the shipments page reads (migrations 0006, 0012)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from lifecycle import models  # noqa: F401  (registers every table on Base.metadata)
from lifecycle.db import Base

# PostgreSQL only (varchar_pattern_ops for LIKE 'RR12%'); SQLite's LIKE uses ix_shipments_number.
POSTGRESQL_ONLY = {"ix_shipments_number_prefix"}


def _index_differences(url: str) -> list[tuple[str, str]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    return sorted(
        (kind, index.name)
        for kind, index, *_ in (d for d in found if isinstance(d, tuple))
        if kind in ("add_index", "remove_index") and index.table.name == "shipments"
    )


def test_shipment_indexes_in_the_migrated_schema_are_declared_on_the_model(
    settings_factory: Any, backend: str
):
    differences = _index_differences(settings_factory().database_url)
    expected = [] if backend == "postgresql" else [("add_index", name) for name in sorted(POSTGRESQL_ONLY)]
    assert differences == expected
