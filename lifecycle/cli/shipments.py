"""Registering numbers with any provider: `register` and `import` (the adapter decides and queues)."""

from __future__ import annotations

import sys

import click

from lifecycle.cli.context import app, emit, nudge, read_session, transaction

# The operations task name, as in lifecycle.runtime (not imported here: it loads the whole service).
FLUSH_OPERATIONS = "lifecycle.operations.flush"

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
carrier_option = click.option("--carrier", type=int, help="The carrier's number at the provider.")


def _report_pause(as_json: bool) -> None:
    from lifecycle.operations import pause
    from lifecycle.providers import registry

    with read_session() as session:
        paused = {name: pause.current(session, name, "register") for name in registry.names()}
    for name, held in paused.items():
        if held and not as_json:
            click.echo(
                f"warning: {name} registration is paused ({held['code']} {held['reason']}); numbers stay "
                f"queued until {held['until'] or '`manage.py resume-registration`'}",
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
        outcomes = queue_registrations(session, requests, runtime.settings())
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
    from lifecycle import runtime
    from lifecycle.extensions import db
    from lifecycle.observability.progress import Progress, counted_lines, file_size, on_terminal
    from lifecycle.shipments.csv_import import import_csv

    def problem(line: int, number: str, message: str) -> None:
        if not as_json:
            click.echo(f"line {line}: {number!r}: {message}", err=True)

    size = file_size(path)
    with app().app_context(), Progress("import", size, "B", enabled=on_terminal(as_json) and size > 0) as bar:
        report = import_csv(
            counted_lines(path, bar),
            db.new_session,
            on_problem=problem,
            on_chunk=lambda: nudge(FLUSH_OPERATIONS),
            settings=runtime.settings(),
        )
    nudge(FLUSH_OPERATIONS)
    summary = (
        f"{report.rows} rows: {report.queued} queued, {report.refused} refused, {report.malformed} malformed"
    )
    emit(report.__dict__, as_json, [summary])
    _report_pause(as_json)
