#!/usr/bin/env python
"""Command line of the shipment lifecycle manager: `python manage.py --help`."""

from lifecycle.cli import cli

if __name__ == "__main__":
    cli()
