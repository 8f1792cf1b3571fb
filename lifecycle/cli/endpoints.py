"""`manage.py endpoint …`: the operator's own systems that receive outbound events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click

from lifecycle.cli.context import app, emit, nudge, read_session, transaction

SEND_TASK = "lifecycle.outbound.send"


@contextmanager
def _explained() -> Iterator[None]:
    """An EndpointError is the user's to fix: say it on one line and exit 1, no traceback."""
    from lifecycle.outbound.endpoints import EndpointError

    try:
        yield
    except EndpointError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def endpoint() -> None:
    """Outbound events: endpoints told of every shipment transition (Standard Webhooks signatures)."""


@endpoint.command()
@click.argument("url")
@click.option(
    "--events", help="Comma-separated event types (delivered,exception,tracking_stopped,…); default all."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def add(url: str, events: str | None, as_json: bool) -> None:
    """Register an endpoint; its signing secret is shown once."""
    from lifecycle.outbound import endpoints

    wanted = [part.strip() for part in events.split(",") if part.strip()] if events else None
    allow_private = app().config["SETTINGS"].outbound_allow_private
    with _explained(), transaction() as session:
        created = endpoints.add(session, url, wanted, allow_private)
        data = {
            "id": created.id,
            "url": created.url,
            "events": created.events or "all",
            "secret": created.secret,
        }
    emit(data, as_json, [
        f"endpoint {data['id']}: {url} (events: {_events_text(data['events'])})",
        f"secret (shown once; verify webhook-signature with it): {data['secret']}",
    ])  # fmt: skip


def _events_text(events: list[str] | str) -> str:
    return events if isinstance(events, str) else ",".join(events)


@endpoint.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool) -> None:
    """List endpoints, their subscriptions, backlog and failures."""
    from lifecycle.outbound import endpoints

    with read_session() as session:
        rows = endpoints.describe(session)
    lines = [f"{'ID':>4} {'STATE':8} {'PENDING':>7} {'FAILS':>5} EVENTS / URL"] if rows else ["no endpoints"]
    for row in rows:
        state = "enabled" if row["enabled"] else "disabled"
        lines.append(f"{row['id']:>4} {state:8} {row['pending']:>7} {row['consecutive_failures']:>5} "
                     f"{_events_text(row['events'])} {row['url']}")  # fmt: skip
        if row["disabled_reason"]:
            lines.append(f"{'':>4} {row['disabled_reason']}")
    emit({"endpoints": rows}, as_json, lines)


@endpoint.command()
@click.argument("endpoint_id", type=int)
def remove(endpoint_id: int) -> None:
    """Remove an endpoint and what was still owed to it."""
    from lifecycle.outbound import endpoints

    with _explained(), transaction() as session:
        endpoints.remove(session, endpoint_id)
    click.echo(f"endpoint {endpoint_id} removed")


@endpoint.command()
@click.argument("endpoint_id", type=int)
def disable(endpoint_id: int) -> None:
    """Stop sending to an endpoint; its deliveries wait until it is enabled."""
    _set_enabled(endpoint_id, False)


@endpoint.command()
@click.argument("endpoint_id", type=int)
def enable(endpoint_id: int) -> None:
    """Send to an endpoint again (resets its failure count and closes its alert)."""
    _set_enabled(endpoint_id, True)


def _set_enabled(endpoint_id: int, enabled: bool) -> None:
    from lifecycle.outbound import endpoints

    with _explained(), transaction() as session:
        endpoints.set_enabled(session, endpoint_id, enabled)
    if enabled:
        nudge(SEND_TASK)
    click.echo(f"endpoint {endpoint_id} {'enabled' if enabled else 'disabled'}")


@endpoint.command()
@click.option("--event", "event_ref", help="One event, by id or by its webhook-id (msg_…).")
@click.option("--since", type=click.DateTime(), help="Every event recorded at or after this time (UTC).")
@click.option("--until", type=click.DateTime(), help="…and before this time (UTC).")
@click.option(
    "--endpoint", "endpoint_id", type=int, help="Only to this endpoint (default: every enabled one)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def replay(event_ref: str | None, since: datetime | None, until: datetime | None,
           endpoint_id: int | None, as_json: bool) -> None:  # fmt: skip
    """Send one event, or a time range of events, again (same webhook-id, new signature)."""
    from lifecycle.outbound import endpoints

    if (event_ref is None) == (since is None):
        raise click.UsageError("give either --event ID or --since TIME")
    with _explained(), transaction() as session:
        if event_ref is not None:
            queued = endpoints.replay_event(session, event_ref, endpoint_id)
        else:
            queued = endpoints.replay_range(session, _utc(since), _utc(until), endpoint_id)
    if queued:
        nudge(SEND_TASK)
    emit({"queued": queued}, as_json, [f"{queued} deliveries queued"])


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@endpoint.command()
@click.argument("endpoint_id", type=int)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def attempts(endpoint_id: int, limit: int, as_json: bool) -> None:
    """An endpoint's latest delivery attempts: status, latency, the start of the answer."""
    from lifecycle.outbound import endpoints

    with _explained(), read_session() as session:
        rows = endpoints.attempts(session, endpoint_id, limit)
    lines = [] if rows else ["no attempts yet"]
    for row in rows:
        answer = row["status_code"] or "no answer"
        excerpt = (row["response"] or "").replace("\n", " ")[:80]
        lines.append(f"{row['at']} {row['type']:18} {row['event']} {answer} {row['latency_ms']} ms "
                     f"({row['delivery']}) {excerpt}")  # fmt: skip
    emit({"attempts": rows}, as_json, lines)
