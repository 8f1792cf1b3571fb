"""Expected failures of a command, told in one line with what to do, instead of a traceback.

A newcomer meets these first: a database never migrated, a SQLite file held by another process, a
provider that cannot be reached or refuses the key. Each becomes `error: …` on stderr and exit 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from lifecycle.migrate import NOT_MIGRATED

EXIT_EXPECTED_FAILURE = 2


class ExpectedFailure(click.ClickException):
    """A refusal the user can act on (a taken port, a key not set): one `error: …` line, exit 2."""

    exit_code = EXIT_EXPECTED_FAILURE

    def show(self, file: object = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def require_17track_key() -> None:
    """Refuse a command that calls 17TRACK now when no key is set (17TRACK would answer 401)."""
    from config.settings import get_settings

    if not get_settings().seventeentrack_api_key.get_secret_value():
        raise ExpectedFailure(MISSING_17TRACK_KEY)


MISSING_17TRACK_KEY = (
    "SEVENTEENTRACK_API_KEY is not set: put your 17token in .env and restart, or try everything "
    "against the simulator with `manage.py simulate` (no 17TRACK account needed)"
)


def _database_message(exc: Exception) -> str | None:
    text = str(getattr(exc, "orig", exc) or exc).lower()
    # SQLite: "no such column: x"; PostgreSQL (UndefinedColumn): 'column "x" … does not exist'.
    if "no such column" in text or ("column" in text and "does not exist" in text):
        return "the database schema is older than this code: run `manage.py db upgrade`"
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return NOT_MIGRATED
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
