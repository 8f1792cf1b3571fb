"""Expected failures of a command, told in one line with what to do, instead of a traceback.

A newcomer meets these first: a database never migrated, a SQLite file held by another process, a
provider that cannot be reached or refuses the key. Each becomes `error: …` on stderr and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

EXIT_EXPECTED_FAILURE = 2


def _database_message(exc: Exception) -> str | None:
    text = str(getattr(exc, "orig", exc) or exc).lower()
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return "the database is not migrated yet: run `manage.py db upgrade` (or start `manage.py run`)"
    if "database is locked" in text:
        return (
            "the SQLite database is locked by another process (a long write is running); "
            "try again in a moment"
        )
    if "unable to open database file" in text:
        return (
            "cannot open the SQLite database file: "
            "check that VAR_DIR / DATABASE_URL point to a writable folder"
        )
    if "connection" in text or "could not connect" in text or "password authentication" in text:
        return f"cannot reach the database ({_first_line(exc)}): check DATABASE_URL and that the server runs"
    return None


def _provider_message(exc: Exception) -> str:
    reason = str(exc)
    if getattr(exc, "transient", False):
        return (
            f"the provider could not be reached or is failing ({reason}); check the API URL setting "
            "(SEVENTEENTRACK_API_URL / CARGOAI_API_URL) and the network, then try again"
        )
    return f"the provider refused the request ({reason}); check the API key setting and the request"


def _first_line(exc: BaseException) -> str:
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@contextmanager
def explain_failures() -> Iterator[None]:
    """Turn the expected failures of any command into one readable line and a non-zero exit."""
    try:
        yield
    except Exception as exc:
        message = _expected_failure(exc)
        if message is None:
            raise
        click.echo(f"error: {message}", err=True)
        raise SystemExit(EXIT_EXPECTED_FAILURE) from None


def _expected_failure(exc: Exception) -> str | None:
    # Classified by module and name, so that a command which never touched SQLAlchemy or pydantic
    # does not import them just to be able to fail.
    module, name = type(exc).__module__, type(exc).__name__
    if module.startswith("sqlalchemy"):
        return _database_message(exc)
    if name == "ProviderError":
        return _provider_message(exc)
    if name == "ValidationError" and module.startswith("pydantic"):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper() or 'settings'}: {error['msg']}"
            for error in exc.errors()  # type: ignore[attr-defined]
        )
        return f"a setting is invalid ({problems}); see `.env.example` and the README's table"
    return None
