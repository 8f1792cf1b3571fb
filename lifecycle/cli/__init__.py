"""`manage.py` commands, grouped by area."""

import click

from lifecycle.cli import accounting, data, processes, provider17, simulate


@click.group(help="Shipment lifecycle manager: webhooks in, state out, providers told.")
def cli() -> None:
    pass


for command in (
    *processes.COMMANDS,
    *data.COMMANDS,
    *provider17.COMMANDS,
    *accounting.COMMANDS,
    simulate.simulate,
):
    cli.add_command(command)
