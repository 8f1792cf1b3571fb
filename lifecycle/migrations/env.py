"""Alembic environment: the URL comes from the caller's config (see lifecycle.migrate)."""

from alembic import context

from lifecycle import models  # noqa: F401  (registers every table on Base.metadata)
from lifecycle.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()  # no pooled connection outlives a migration


run_migrations_online()
