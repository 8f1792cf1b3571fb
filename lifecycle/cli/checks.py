"""What a command checks before its own code runs: the database at this code's revision, and a
provider key where the command calls the provider there and then.

The checks run where the command's code would, after its options are parsed, so `COMMAND --help`
needs neither. A database behind the code would otherwise fail with a `no such column` traceback
on a read or, worse, take a write into the old schema; a missing key would come back as the
provider's 401.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import click

from lifecycle.cli.errors import ExpectedFailure, require_17track_key

# The process commands check (or, on the embedded default, upgrade) the database themselves, `db`
# is how it gets there, and `simulate` runs on a database of its own.
NO_SCHEMA_CHECK = frozenset({"run", "serve", "worker", "beat", "db", "simulate"})
# Commands that call 17TRACK before answering (the rest queue work for the workers).
NEEDS_17TRACK_KEY = frozenset({"reconcile"})


def require_current_schema() -> None:
    """Refuse (exit 2, one line) when the database is not at the revision this code expects."""
    from lifecycle.cli.context import database_url
    from lifecycle.migrate import schema_problem

    problem = schema_problem(database_url())
    if problem:
        raise ExpectedFailure(problem)


def guarded(name: str, command: click.Command) -> click.Command:
    """`command` made to run its checks first (wrapped once: click keeps one object per command)."""
    checks = [require_17track_key] if name in NEEDS_17TRACK_KEY else []
    if name not in NO_SCHEMA_CHECK:
        checks.append(require_current_schema)
    if checks and not getattr(command, "_guarded", False):
        _wrap(command, checks)
    return command


def _wrap(command: click.Command, checks: list[Callable[[], None]]) -> None:
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            _wrap(subcommand, checks)
    elif command.callback is not None:
        callback = command.callback

        @functools.wraps(callback)
        def checked(*args, **kwargs):  # type: ignore[no-untyped-def]
            for check in checks:
                check()
            return callback(*args, **kwargs)

        command.callback = checked
    command._guarded = True  # type: ignore[attr-defined]
