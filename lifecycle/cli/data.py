"""Data commands: db upgrade, shipments, inbox."""

from __future__ import annotations

import json
from typing import Any

import click

from lifecycle.cli.context import read_session, transaction


@click.group()
def db() -> None:
    """Database schema."""


@db.command()
def upgrade() -> None:
    """Apply every pending migration to DATABASE_URL."""
    from config.settings import get_settings
    from lifecycle import migrate

    settings = get_settings()
    migrate.upgrade(settings.database_url)
    click.echo("database at head")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--status", help="Filter by status (delivered, in_transit, …).")
@click.option("--tracking", help="Filter by tracking state (tracking, stopping, stopped, …).")
@click.option("--number", help="One tracking number.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--history", is_flag=True, help="Include each shipment's transitions.")
def shipments(as_json: bool, status: str | None, tracking: str | None, number: str | None,
              limit: int, history: bool) -> None:  # fmt: skip
    """List shipments and their state."""
    from lifecycle.operations.queries import retries_by_shipment
    from lifecycle.shipments import queries

    with read_session() as session:
        rows = queries.list_shipments(session, status=status, tracking=tracking, number=number, limit=limit)
        retries = retries_by_shipment(session, [row.id for row in rows])
        items = []
        for shipment in rows:
            item = queries.shipment_json(shipment)
            item["retrying"] = retries.get(shipment.id)
            if history:
                item["transitions"] = [
                    queries.transition_json(t) for t in queries.history(session, shipment.id)
                ]
            items.append(item)
    if as_json:
        click.echo(json.dumps({"shipments": items}, indent=2))
        return
    _print_shipments(items)


def _note(item: dict[str, Any]) -> str:
    """What an operator should know about a row: its last error, or the call being retried."""
    if item["last_error"]:
        return f"{item['error_code'] or ''} {item['last_error']}".strip()
    retry = item.get("retrying")
    if retry:
        return (
            f"{retry['kind']} retrying (attempt {retry['attempts']}, next {retry['next_attempt_at']}): "
            f"{retry['last_error']}"
        )
    return ""


def _print_shipments(items: list[dict[str, Any]]) -> None:
    if not items:
        click.echo("no shipments")
        return
    click.echo(
        f"{'PROVIDER':8} {'NUMBER':24} {'CARRIER':>7} {'STATUS':20} {'TRACKING':9} {'ORIGIN':10} "
        f"{'LAST EVENT':20} NOTE"
    )
    for item in items:
        click.echo(
            f"{item['provider']:8} {item['number']:24} {item['carrier'] or '-':>7} "
            f"{item['status']:20} {item['tracking']:9} {item['origin']:10} {item['last_event_at'] or '-':20} "
            f"{_note(item)}".rstrip()
        )
        for transition in item.get("transitions", []):
            mark = "" if transition["kind"] == "applied" else f"  ({transition['kind']})"
            click.echo(
                f"    {transition['event_time'] or '-':20} {transition['from'] or '-'} → {transition['to']}"
                f"{'  ' + transition['sub_status'] if transition['sub_status'] else ''}{mark}"
            )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--requeue-failed", is_flag=True, help="Put failed rows back to pending.")
def inbox(as_json: bool, requeue_failed: bool) -> None:
    """Inbox counts by status, and the failed rows with their errors."""
    from sqlalchemy import func, select

    from lifecycle.inbox import service
    from lifecycle.inbox.models import FAILED, InboxEvent

    requeued = 0
    if requeue_failed:
        with transaction() as session:
            requeued = service.requeue_failed(session)
    with read_session() as session:
        counts = dict(
            session.execute(select(InboxEvent.status, func.count()).group_by(InboxEvent.status)).all()
        )
        failed = session.scalars(select(InboxEvent).where(InboxEvent.status == FAILED).limit(50)).all()
        failures = [{"id": r.id, "provider": r.provider, "error": r.error} for r in failed]
    report = {"counts": counts, "failed": failures, "requeued": requeued}
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "inbox empty")
    for failure in failures:
        click.echo(f"failed #{failure['id']} ({failure['provider']}): {failure['error']}")
    if requeued:
        click.echo(f"requeued {requeued} failed row(s)")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def operations(as_json: bool) -> None:
    """The outbox: operations by kind and status, pauses, and the latest failures."""
    from sqlalchemy import func, select

    from lifecycle.operations import pause
    from lifecycle.operations.models import FAILED, Operation
    from lifecycle.operations.queries import retrying

    with read_session() as session:
        counts: dict[str, dict[str, int]] = {}
        stmt = select(Operation.kind, Operation.status, func.count()).group_by(
            Operation.kind, Operation.status
        )
        for kind, status, n in session.execute(stmt):
            counts.setdefault(kind, {})[status] = n
        pauses = pause.in_force(session)
        failed_stmt = (
            select(Operation).where(Operation.status == FAILED).order_by(Operation.id.desc()).limit(20)
        )
        failures = [
            {"kind": o.kind, "number": o.number, "code": o.result_code, "message": o.result_message}
            for o in session.scalars(failed_stmt)
        ]
        retries = retrying(session)
    report = {"counts": counts, "pauses": pauses, "recent_failures": failures, "retrying": retries}
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for kind, by_status in sorted(counts.items()):
        click.echo(f"{kind:14} " + "  ".join(f"{k}: {v}" for k, v in sorted(by_status.items())))
    for key, value in pauses.items():
        click.echo(f"PAUSED {key}: {value['code']} {value['reason']} (until {value['until'] or 'resumed'})")
    for failure in failures:
        click.echo(f"failed {failure['kind']} {failure['number']}: {failure['code']} {failure['message']}")
    for retry in retries:
        click.echo(
            f"retrying {retry['kind']} {retry['number']} (attempt {retry['attempts']}, next "
            f"{retry['next_attempt_at']}): {retry['last_error']}"
        )
    if not counts:
        click.echo("no operations")
