"""`manage.py cleanup`: run a scheduled job now (or all of them), or list them with their last run."""

from __future__ import annotations

import json
from typing import Any

import click

from lifecycle.cleanup.schedule import BY_NAME, JOBS
from lifecycle.cli.context import app, read_session


@click.command()
@click.argument("job", required=False, type=click.Choice(list(BY_NAME)))
@click.option("--list", "list_jobs", is_flag=True, help="Every job, its schedule, last run, open alerts.")
@click.option("--dry-run", is_flag=True, help="Say what the job would do, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def cleanup(job: str | None, list_jobs: bool, dry_run: bool, as_json: bool) -> None:
    """Run a scheduled cleanup job now (all of them without JOB), or --list them.

    Without JOB a failing job does not stop the others: each failure is one line, and the
    command exits 1 once every job has had its turn.
    """
    if list_jobs:
        _list(as_json)
        return
    from lifecycle.observability.progress import on_terminal, reported

    failures: dict[str, str] = {}
    if job:
        bar = on_terminal(as_json)
        with app().app_context(), reported(f"cleanup {job}", "rows", bar) as rows:
            results = {job: _run(job, dry_run, rows if bar else None)}
    else:
        results, failures = _run_all(dry_run, on_terminal(as_json))
    if as_json:
        click.echo(json.dumps(results[job] if job else results, indent=2, default=str))
    else:
        _print(results, failures, dry_run)
    if failures:
        click.echo(f"error: {len(failures)} of {len(results)} jobs failed: {', '.join(failures)}", err=True)
        raise SystemExit(1)


def _run(name: str, dry_run: bool, progress: Any) -> dict[str, Any]:
    from lifecycle import jobs

    return jobs.cleanup(name, dry_run=dry_run, progress=progress)


def _run_all(dry_run: bool, bar_enabled: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """Every job in turn; one that fails (its run row says why) does not keep the others from running."""
    from lifecycle.observability.progress import Progress

    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    with app().app_context(), Progress("cleanup", len(JOBS), "jobs", enabled=bar_enabled) as bar:
        for spec in JOBS:
            try:
                results[spec.name] = _run(spec.name, dry_run, None)
            except Exception as exc:
                first_line = (str(exc).strip().splitlines() or [""])[0]
                failures[spec.name] = f"{exc.__class__.__name__}: {first_line}"[:300]
                results[spec.name] = {"error": failures[spec.name]}
            bar.advance()
    return results, failures


def _print(results: dict[str, Any], failures: dict[str, str], dry_run: bool) -> None:
    for name, counts in results.items():
        if name in failures:
            click.echo(f"{name}: FAILED {failures[name]}")
            continue
        click.echo(f"{name}{' (dry run: nothing changed)' if dry_run else ''}")
        for line in _count_lines(counts):
            click.echo(f"  {line}")


def _count_lines(counts: dict[str, Any]) -> list[str]:
    """Totals first, then the listed rows (a dry run lists what a real run would act on)."""
    lines, listed = [], []
    for key, value in counts.items():
        if isinstance(value, list):
            listed += [f"{key}: {_item(entry)}" for entry in value]
        else:
            lines.append(f"{key}: {value}")
    return (lines or ["nothing to do"]) + listed


def _item(entry: Any) -> str:
    if isinstance(entry, dict) and "number" in entry:
        rest = ", ".join(f"{k}={v}" for k, v in entry.items() if k != "number" and v is not None)
        return f"{entry['number']} ({rest})"
    return str(entry)


def _list(as_json: bool) -> None:
    from config.settings import get_settings
    from lifecycle.cleanup import runs
    from lifecycle.cleanup.retention import replay_window

    settings = get_settings()
    with read_session() as session:
        last = runs.last_runs(session, [spec.name for spec in JOBS])
        alerts = [
            {"job": a.job, "message": a.message, "raised_at": a.raised_at.isoformat()}
            for a in runs.open_alerts(session)
        ]
        replay = replay_window(session)
        beats = _heartbeats(session, settings)
    listing = [
        {
            "job": spec.name,
            "every_seconds": spec.interval(settings),
            "does": spec.summary,
            "last_run": _run_json(last.get(spec.name)),
        }
        for spec in JOBS
    ]
    if as_json:
        report = {"jobs": listing, "heartbeat": beats, "open_alerts": alerts, "replay": replay}
        click.echo(json.dumps(report, indent=2))
        return
    for item in listing:
        click.echo(f"{item['job']:<22} every {_every(item['every_seconds']):<8} {item['does']}")
        click.echo(f"{'':<22} {_last_line(item['last_run'])}")
    click.echo(f"{'heartbeat':<22} every {_every(beats['every_seconds']):<8} {HEARTBEAT_DOES}")
    click.echo(f"{'':<22} {_heartbeat_line(beats)}")
    click.echo(replay["message"])
    for alert in alerts:
        click.echo(f"ALERT ({alert['job']}, {alert['raised_at'][:16]}): {alert['message']}")


HEARTBEAT_DOES = "beat sends a tiny task; beat and the worker that runs it record their heartbeat"


def _heartbeats(session: Any, settings: Any) -> dict[str, Any]:
    """The heartbeat's interval and the newest worker and beat heartbeat ages (as /healthz)."""
    from lifecycle.cleanup.heartbeat import ages
    from lifecycle.db import utcnow

    return {"every_seconds": settings.heartbeat_interval_seconds, **ages(session, utcnow(), settings)}


def _heartbeat_line(beats: dict[str, Any]) -> str:
    def age(seconds: float | None) -> str:
        return "never" if seconds is None else f"{seconds:g} s ago"

    line = (
        f"newest worker heartbeat {age(beats['worker_heartbeat_age_seconds'])}, "
        f"beat {age(beats['beat_heartbeat_age_seconds'])}"
    )
    problems = [beats["workers"]["problem"], beats["beat"]["problem"]]
    return "; ".join([line, *(f"PROBLEM: {problem}" for problem in problems if problem)])


def _run_json(run: Any) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "dry_run": run.dry_run,
        "counts": run.counts,
        "error": run.error,
    }


def _every(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _last_line(run: dict[str, Any] | None) -> str:
    if run is None:
        return "never ran"
    when = f"last ran {run['started_at'][:19]}Z{' (dry run)' if run['dry_run'] else ''}"
    if run["error"]:
        return f"{when}: FAILED {run['error']}"
    if run["finished_at"] is None:
        return f"{when}: still running (or died)"
    totals = {k: v for k, v in run["counts"].items() if not isinstance(v, list | dict)}
    did = ", ".join(f"{k} {v}" for k, v in totals.items()) or "nothing to do"
    return f"{when}: {did}"
