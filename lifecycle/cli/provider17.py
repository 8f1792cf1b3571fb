"""17TRACK commands: register, import, stop, retrack, change-carrier, delete, changeinfo, sync,
reconcile, operations, resume-registration, create-token."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from lifecycle.cli.context import app, emit, nudge, read_session, transaction

# The operations task name, as in lifecycle.runtime (not imported here: it loads the whole service).
FLUSH_OPERATIONS = "lifecycle.operations.flush"

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
carrier_option = click.option("--carrier", type=int, help="17TRACK carrier number (needed if several).")


def _report_pause(as_json: bool) -> None:
    from lifecycle.operations import pause

    with read_session() as session:
        held = pause.current(session, "17track", "register")
    if held and not as_json:
        click.echo(
            f"warning: registration is paused ({held['code']} {held['reason']}); numbers stay queued until "
            f"{held['until'] or '`manage.py resume-registration`'}",
            err=True,
        )


@click.command()
@click.argument("numbers", nargs=-1, required=True)
@carrier_option
@click.option("--lang", help="17TRACK: translation language (costs 1 more quota).")
@click.option("--tag", help="Your reference, echoed back in pushes.")
@click.option(
    "--provider",
    type=click.Choice(["17track", "cargoai"]),
    help="Default: AWB-shaped numbers (PPP-SSSSSSSC) go to CargoAi, anything else to 17TRACK.",
)
@click.option(
    "--mode",
    type=click.Choice(["push", "pull"]),
    help="CargoAi: subscription with callbacks (push) or polling (pull); default CARGOAI_MODE.",
)
@click.option("--email", "emails", multiple=True, help="CargoAi: e-mail notified of updates (repeatable).")
@click.option("--airline-code", help="CargoAi: the airline's IATA code, for interline AWBs.")
@json_option
def register(numbers: tuple[str, ...], carrier: int | None, lang: str | None, tag: str | None,
             provider: str | None, mode: str | None, emails: tuple[str, ...], airline_code: str | None,
             as_json: bool) -> None:  # fmt: skip
    """Register numbers: 17TRACK, or CargoAi for AWBs (batched, rate-limited, never twice)."""
    from lifecycle import runtime
    from lifecycle.shipments.registration import Registration
    from lifecycle.shipments.registration import register as queue_registrations

    requests = [
        Registration(n, carrier, lang, tag, provider, mode, emails, airline_code and airline_code.upper())
        for n in numbers
    ]
    with transaction() as session:
        config = runtime.settings()
        outcomes = queue_registrations(
            session,
            requests,
            default_mode=config.cargoai_mode,
            cargoai_configured=bool(config.cargoai_api_key.get_secret_value()),
        )
    if any(o.ok for o in outcomes):
        nudge(FLUSH_OPERATIONS)
    lines = [f"{o.number}: {o.message}" for o in outcomes]
    emit({"results": [o.as_json() for o in outcomes]}, as_json, lines)
    _report_pause(as_json)
    sys.exit(0 if all(o.ok for o in outcomes) else 1)


@click.command("import")
@click.argument("path", type=click.File("r", encoding="utf-8-sig"))
@json_option
def import_(path, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    """Import a CSV of numbers (columns: number, carrier, lang, tag), streaming."""
    from lifecycle.extensions import db
    from lifecycle.shipments.csv_import import import_csv

    def problem(line: int, number: str, message: str) -> None:
        if not as_json:
            click.echo(f"line {line}: {number!r}: {message}", err=True)

    from lifecycle import runtime
    from lifecycle.observability.progress import Progress, counted_lines, file_size, on_terminal

    size = file_size(path)
    with app().app_context(), Progress("import", size, "B", enabled=on_terminal(as_json) and size > 0) as bar:
        report = import_csv(
            counted_lines(path, bar),
            db.new_session,
            on_problem=problem,
            on_chunk=lambda: nudge(FLUSH_OPERATIONS),
            cargoai_configured=bool(runtime.settings().cargoai_api_key.get_secret_value()),
        )
    nudge(FLUSH_OPERATIONS)
    summary = (
        f"{report.rows} rows: {report.queued} queued, {report.refused} refused, {report.malformed} malformed"
    )
    emit(report.__dict__, as_json, [summary])
    _report_pause(as_json)


def _lifecycle_command(name: str, action: Callable[..., object], help_text: str, **extra: click.Option):  # type: ignore[no-untyped-def]
    @click.command(name, help=help_text)
    @click.argument("number")
    @carrier_option
    @json_option
    def command(number: str, carrier: int | None, as_json: bool, **kwargs: object) -> None:
        from lifecycle.shipments.commands import CommandRefused

        try:
            with transaction() as session:
                outcome = action(session, number, carrier=carrier, **kwargs)
        except (CommandRefused, ValueError) as exc:
            emit({"number": number, "queued": False, "message": str(exc)}, as_json, [f"refused: {exc}"])
            sys.exit(1)
        nudge(FLUSH_OPERATIONS)
        emit(outcome.as_json(), as_json, [f"{outcome.number}: {outcome.message}"])

    for option in extra.values():
        command = option(command)
    return command


def _commands():  # type: ignore[no-untyped-def]
    from lifecycle.shipments import commands

    def delete(session, number, carrier=None, yes=False):  # type: ignore[no-untyped-def]
        if not yes:
            raise commands.CommandRefused(f"{commands.DELETE_WARNING}; add --yes to delete")
        return commands.delete(session, number, carrier)

    def change_carrier(session, number, carrier=None, to=None):  # type: ignore[no-untyped-def]
        return commands.change_carrier(session, number, to, carrier)

    def changeinfo(session, number, carrier=None, tag=None, lang=None):  # type: ignore[no-untyped-def]
        return commands.change_info(session, number, tag=tag, lang=lang, carrier=carrier)

    return [
        _lifecycle_command("stop", commands.stop, "Stop tracking a number (stoptrack)."),
        _lifecycle_command("retrack", commands.retrack, "Restart a stopped number (free, once per number)."),
        _lifecycle_command(
            "change-carrier",
            change_carrier,
            "Move a number to another carrier (5 free changes).",
            to=click.option("--to", "to", type=int, required=True, help="The new carrier number."),
        ),
        _lifecycle_command(
            "delete",
            delete,
            "Delete a number at 17TRACK (registering it again is charged again).",
            yes=click.option("--yes", is_flag=True, help="Confirm the delete."),
        ),
        _lifecycle_command(
            "changeinfo",
            changeinfo,
            "Change a number's tag and/or translation language.",
            tag=click.option("--tag"),
            lang=click.option("--lang"),
        ),
        _lifecycle_command("sync", commands.sync, "Fetch a number's current data (gettrackinfo, free)."),
    ]


@click.command()
@json_option
def reconcile(as_json: bool) -> None:
    """Compare 17TRACK's list of numbers (gettracklist) with ours."""
    from lifecycle import runtime
    from lifecycle.extensions import db
    from lifecycle.shipments.reconcile import reconcile as compare

    with app().app_context():
        report = compare(db.new_session, runtime.client17())
    lines = [
        f"17TRACK tracks {report['provider_count']}, we track {report['local_count']}",
        *(
            f"only at 17TRACK: {i['number']} ({i['carrier']}) {i['tracking_status']}"
            for i in report["only_at_provider"]
        ),
        *(f"only here: {i['number']} ({i['carrier']}) {i['tracking']}" for i in report["only_here"]),
        *(
            f"mismatch: {i['number']} here {i['here']}, 17TRACK {i['at_17track']}"
            for i in report["state_mismatch"]
        ),
    ]
    emit(report, as_json, lines)


@click.command("resume-registration")
def resume_registration() -> None:
    """Lift a registration pause (after buying quota or allowing overage)."""
    from lifecycle.operations import pause

    with transaction() as session:
        lifted = pause.resume(session, "17track", "register")
    nudge(FLUSH_OPERATIONS)
    click.echo("registration resumed" if lifted else "registration was not paused")


@click.command("create-token")
@click.argument("name")
def create_token(name: str) -> None:
    """Create a token for the JSON API (shown once)."""
    from lifecycle.api.tokens import create_token as make

    with transaction() as session:
        token = make(session, name)
    click.echo(token)


stop, retrack, change_carrier, delete, changeinfo, sync = _commands()
