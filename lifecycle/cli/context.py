"""What CLI commands share: an app, a session, and a nudge to the workers after a commit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from flask import Flask
    from sqlalchemy.orm import Session

_app: Flask | None = None


def app() -> Flask:
    global _app
    if _app is None:
        from lifecycle import create_app

        _app = create_app()
    return _app


def database_url() -> str:
    """The database this command uses: its app's, once one is built (tests hand the CLI theirs)."""
    if _app is not None:
        return str(_app.config["DATABASE_URL"])
    from config.settings import get_settings

    return get_settings().database_url


@contextmanager
def transaction() -> Iterator[Session]:
    """A session in a transaction committed on success, inside the app context."""
    from lifecycle.extensions import db

    with app().app_context(), db.new_session() as session, session.begin():
        yield session


@contextmanager
def read_session() -> Iterator[Session]:
    """A session for a read command, without the web app, and never taking SQLite's write lock.

    Building the whole app (Celery, rule files, provider clients) costs a second; a read needs only
    the database, and only the models it queries (none of them has an ORM relationship to resolve).
    """
    from sqlalchemy.orm import Session

    from lifecycle.db import make_engine

    engine = make_engine(database_url(), writes=False)
    try:
        with Session(engine, expire_on_commit=False) as session:
            yield session
    finally:
        engine.dispose()


def nudge(task_name: str) -> None:
    """Tell the workers there is work now; if the broker is down, beat's sweeper does it later."""
    from lifecycle import runtime

    with app().app_context():
        if not runtime.signal(task_name):
            click.echo("note: broker unreachable; the sweeper will send this shortly", err=True)


def emit(data: Any, as_json: bool, lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        for line in lines:
            click.echo(line)
