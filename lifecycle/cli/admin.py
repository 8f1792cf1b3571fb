"""`manage.py create-admin` and `create-token`: accounts for the admin console and the JSON API."""

from __future__ import annotations

import sys

import click

from lifecycle.cli.context import transaction


@click.command("create-admin")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (scripts).")
def create_admin(email: str, password_stdin: bool) -> None:
    """Create an admin who signs in to /admin with EMAIL and a password (prompted)."""
    from lifecycle.admin.accounts import AccountError
    from lifecycle.admin.accounts import create_admin as create

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with transaction() as session:
            user = create(session, email, password)
            created = user.email
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"admin {created} created; sign in at /admin")


@click.command("create-token")
@click.argument("name")
def create_token(name: str) -> None:
    """Create a token for the JSON API (shown once)."""
    from lifecycle.api.tokens import create_token as make

    with transaction() as session:
        token = make(session, name)
    click.echo(token)
