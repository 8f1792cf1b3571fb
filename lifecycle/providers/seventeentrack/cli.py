"""17TRACK's own commands on registered numbers: stop, retrack, change-carrier, delete, changeinfo,
sync, reconcile, resume-registration (listed in lifecycle/cli/__init__.py's SECTIONS)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click

from lifecycle.cli.context import app, emit, nudge, transaction
from lifecycle.cli.shipments import FLUSH_OPERATIONS, carrier_option, json_option


def _lifecycle_command(name: str, action: Callable[..., object], help_text: str, **extra: click.Option):  # type: ignore[no-untyped-def]
    @click.command(name, help=help_text)
    @click.argument("number")
    @carrier_option
    @json_option
    def command(number: str, carrier: int | None, as_json: bool, **kwargs: object) -> None:
        from lifecycle.providers.seventeentrack.commands import CommandRefused

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
    from lifecycle.providers.seventeentrack import commands

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
    from lifecycle.providers.seventeentrack.reconcile import reconcile as compare

    with app().app_context():
        report = compare(db.new_session, runtime.client("17track"))
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


stop, retrack, change_carrier, delete, changeinfo, sync = _commands()
