"""`manage.py` commands, grouped by area.

The table below is the one place that lists commands. A command's module is imported only when that
command runs, so `manage.py --help` and a quick read command do not pay for the whole service
(Flask, SQLAlchemy, Celery, the providers) before doing anything.
"""

from __future__ import annotations

import importlib

import click

from lifecycle.cli.checks import guarded
from lifecycle.cli.errors import explain_failures

ST = "lifecycle.providers.seventeentrack.cli"
# section → command name → ("module:attribute", one-line help shown by `manage.py --help`).
SECTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "Run the service": {
        "run": ("processes:run", "Web server, worker and beat together (embedded default)."),
        "serve": ("processes:serve", "Serve the web app with gunicorn (production)."),
        "worker": ("processes:worker", "Run a Celery worker (any number, on any machine)."),
        "beat": ("processes:beat", "Run the scheduler (exactly one per deployment)."),
        "db": ("data:db", "Database schema: `db upgrade`."),
        "simulate": ("simulate:simulate", "Try the whole service against the 17TRACK simulator."),
    },
    "Shipments": {
        "register": ("shipments:register", "Register numbers (17TRACK, or CargoAi for AWBs)."),
        "import": ("shipments:import_", "Import a CSV of numbers (number, carrier, lang, tag)."),
        "shipments": ("data:shipments", "List shipments and their state."),
    },
    "17TRACK numbers": {
        "stop": (f"{ST}:stop", "Stop tracking a number (stoptrack)."),
        "retrack": (f"{ST}:retrack", "Restart a stopped number (free, once per number)."),
        "change-carrier": (f"{ST}:change_carrier", "Move a number to another carrier (5 free)."),
        "changeinfo": (f"{ST}:changeinfo", "Change a number's tag and/or language."),
        "delete": (f"{ST}:delete", "Delete a number (registering it again is charged)."),
        "sync": (f"{ST}:sync", "Fetch a number's current data (gettrackinfo, free)."),
        "reconcile": (f"{ST}:reconcile", "Compare 17TRACK's list of numbers with ours."),
        "resume-registration": (f"{ST}:resume_registration", "Lift a registration pause."),
    },
    "Pipeline": {
        "status": ("status:status", "Lag, backlog, heartbeats, quota, last jobs, alerts (--watch)."),
        "inbox": ("data:inbox", "Inbox counts, failed rows and their errors; requeue them."),
        "operations": ("data:operations", "The outbox: queued, sent, failed, paused; last errors."),
        "cleanup": ("cleanup:cleanup", "Run a scheduled job now (--dry-run), or --list jobs and last runs."),
        "endpoint": ("endpoints:endpoint", "Outbound events to your systems: add, list, attempts, replay, …"),
    },
    "Cost accountant": {
        "quota": ("accounting:quota", "Quota used and remaining per bucket and provider."),
        "plan": ("accounting:plan", "The cheapest plan for the observed volume, and savings."),
        "replay": ("accounting:replay", "Rebuild state and ledger from the inbox; list differences."),
    },
    "Access": {
        "create-token": ("admin:create_token", "Create a token for the JSON API (shown once)."),
        "create-admin": ("admin:create_admin", "Create an admin for the admin console (/admin)."),
    },
}


def _entry(name: str) -> tuple[str, str] | None:
    for commands in SECTIONS.values():
        if name in commands:
            return commands[name]
    return None


class LazyGroup(click.Group):
    """A group whose commands are imported on first use, listed by section in `--help`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for commands in SECTIONS.values() for name in commands]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _entry(cmd_name)
        if entry is None:
            return None
        module_name, attribute = entry[0].split(":")
        # A provider's own commands live in its room (lifecycle.providers.<name>.cli).
        path = module_name if module_name.startswith("lifecycle.") else f"lifecycle.cli.{module_name}"
        module = importlib.import_module(path)
        command = getattr(module, attribute)
        return guarded(cmd_name, command)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for section, commands in SECTIONS.items():
            with formatter.section(section):
                formatter.write_dl([(name, help_text) for name, (_, help_text) in commands.items()])

    def invoke(self, ctx: click.Context) -> object:
        with explain_failures():
            return super().invoke(ctx)


@click.group(
    cls=LazyGroup,
    help="Shipment lifecycle manager: webhooks in, state out, providers told.\n\n"
    "Run commands as `.venv/bin/python manage.py COMMAND` (or `python manage.py` with .venv active); "
    "every read command takes --json.",
)
def cli() -> None:
    pass
