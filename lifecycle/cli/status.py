"""`manage.py status`: the whole service on one screen (`--watch` refreshes it, `--json` for scripts)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from lifecycle.cli.context import read_session


@click.command()
@click.option("--watch", is_flag=True, help="Refresh the screen until Ctrl-C.")
@click.option(
    "--interval", default=2.0, show_default=True, type=click.FloatRange(min=0.2), help="--watch period."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object; one per line with --watch).")
def status(watch: bool, interval: float, as_json: bool) -> None:
    """Inbox lag, outbox backlog, pauses, outbound events, heartbeats, quota, job runs and alerts."""
    while True:
        report = _report()
        if as_json:
            click.echo(json.dumps(report, default=str, indent=None if watch else 2))
        else:
            if watch:
                click.clear()
            click.echo("\n".join(render(report)))
        if not watch:
            return
        time.sleep(interval)


def _report() -> dict[str, Any]:
    # Imported here: `manage.py --help` and the other commands do not pay for them.
    from config.settings import get_settings
    from lifecycle.accounting.service import accounts_in_force
    from lifecycle.db import utcnow
    from lifecycle.observability.health_report import collect

    settings = get_settings()
    with read_session() as session:
        return collect(session, settings, accounts_in_force(session, settings), utcnow())


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def render(report: dict[str, Any]) -> list[str]:
    inbox, outbox, beats = report["inbox"], report["outbox"], report["heartbeats"]
    at_least = "≥" if inbox["capped"] else ""
    oldest = inbox["oldest_pending_age_seconds"]
    queued = (
        ", ".join(f"{row['provider']} {row['kind']} {row['count']}" for row in outbox["queued"]) or "empty"
    )
    lines = [
        f"lifecycle status at {report['at'][:19]}Z",
        f"inbox     {at_least}{inbox['pending']} pending"
        + (f", oldest received {_age(oldest)}" if oldest is not None else "")
        + f"; {inbox['failed']} failed",
        f"outbox    queued: {queued}; in flight {outbox['in_flight']}; failed {outbox['failed']}",
        "paused    " + ("; ".join(_pause(p) for p in report["paused"]) or "nothing"),
        f"outbound  {_outbound(report['outbound'])}",
        f"workers   {beats['workers']['alive']} alive, "
        f"newest heartbeat {_age(beats['worker_heartbeat_age_seconds'])}",
        f"beat      heartbeat {_age(beats['beat_heartbeat_age_seconds'])}",
        "quota",
        *[f"  {line}" for line in _quota(report["quota"])],
        "jobs",
        *[f"  {_job(job)}" for job in report["jobs"]],
        "alerts" + ("    none" if not report["alerts"] else ""),
        *[f"  ! {alert}" for alert in report["alerts"]],
    ]
    return lines


def _outbound(outbound: dict[str, Any]) -> str:
    if not outbound["endpoints"]:
        return "no endpoint (`manage.py endpoint add URL`)"
    disabled = ""
    if outbound["endpoints_disabled"]:
        disabled = f" ({outbound['endpoints_disabled']} disabled, {outbound['held']} deliveries held)"
    oldest = outbound["oldest_pending_age_seconds"]
    age = f", oldest created {_age(oldest)}" if oldest is not None else ""
    return (
        f"{outbound['endpoints']} endpoint(s){disabled}; {outbound['pending']} pending{age}; "
        f"in flight {outbound['in_flight']}; given up {outbound['given_up']}"
    )


def _pause(pause: dict[str, Any]) -> str:
    until = f" until {pause['until'][:16]}" if pause.get("until") else " until resumed"
    return f"{pause['provider']} {pause['kind']}: {pause.get('reason')}{until}"


def _quota(buckets: list[dict[str, Any]]) -> list[str]:
    lines = []
    for bucket in buckets:
        if not bucket["limit"] and not bucket["used"]:
            continue  # an unused overage bucket, or one the account does not have (no plan), says nothing
        limit = "" if bucket["limit"] is None else f" of {bucket['limit']} ({bucket['remaining']} left)"
        name = f"{bucket['provider']} {bucket['unit']} {bucket['bucket']} {bucket['period']}"
        lines.append(f"{name}: {bucket['used']} used{limit}")
    return lines or ["no provider configured"]


def _job(job: dict[str, Any]) -> str:
    line = f"{job['job']:<22} last success {_age(job['last_success_age_seconds'])}"
    if job["last_error"]:
        line += f"; last run failed: {job['last_error'][:80]}"
    return line
