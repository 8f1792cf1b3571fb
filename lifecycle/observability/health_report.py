"""One picture of the service (`manage.py status`) and the alerts it raises, with their thresholds.

The thresholds are the ones the README's "Production" section recommends for Prometheus alerts,
so the console and the alerting rules agree on what "wrong" means.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from config.settings import Settings
from lifecycle.accounting.ledger import Account
from lifecycle.observability import snapshot

# The oldest pending inbox row should be applied within seconds; a minute means workers lag.
INBOX_LAG_ALERT_SECONDS = 60.0
# An outbound delivery is normally sent within seconds; one still pending after an hour has
# failed for that long (the receiver is down or refusing) or nobody is sending.
OUTBOUND_LAG_ALERT_SECONDS = 3600.0
# A plan bucket with this share or less left alerts (registrations stop at 0 without overage).
QUOTA_LOW_FRACTION = 0.05
# A job whose last success is older than this many intervals is overdue.
JOB_OVERDUE_INTERVALS = 2


def collect(
    session: Session, settings: Settings, accounts: dict[str, Account], now: datetime
) -> dict[str, Any]:
    report = {
        "at": now.isoformat(),
        "inbox": snapshot.inbox_lag(session, now),
        "outbox": snapshot.outbox(session),
        "paused": snapshot.pauses(session, now),
        "outbound": snapshot.outbound(session, now),
        "heartbeats": snapshot.heartbeats(session, settings, now),
        "quota": snapshot.quota(session, accounts, now),
        "jobs": snapshot.jobs(session, settings, now),
        "job_alerts": snapshot.open_alerts(session),
    }
    report["alerts"] = alerts(report, settings)
    return report


def alerts(report: dict[str, Any], settings: Settings) -> list[str]:
    """Sentences for everything past its threshold, most urgent first."""
    found: list[str] = []
    beats = report["heartbeats"]
    if beats["workers"]["problem"]:
        found.append(f"workers: {beats['workers']['problem']}")
    beat_age = beats["beat_heartbeat_age_seconds"]
    if beats["beat"]["problem"]:
        found.append("beat: " + ("no heartbeat yet" if beat_age is None else f"silent for {int(beat_age)} s"))
    lag = report["inbox"]["oldest_pending_age_seconds"]
    if lag is not None and lag > INBOX_LAG_ALERT_SECONDS:
        found.append(
            f"inbox: oldest pending row waits for {int(lag)} s ({report['inbox']['pending']} pending)"
        )
    if report["inbox"]["failed"]:
        found.append(f"inbox: {report['inbox']['failed']} failed rows (`manage.py inbox`)")
    found += _outbound_alerts(report.get("outbound"))
    for pause in report["paused"]:
        found.append(f"{pause['provider']} {pause['kind']} paused: {pause.get('reason')}")
    found += _quota_alerts(report["quota"])
    found += _job_alerts(report["jobs"])
    found += [f"{alert['job']}: {alert['message']}" for alert in report["job_alerts"]]
    return found


def _outbound_alerts(outbound: dict[str, Any] | None) -> list[str]:
    if not outbound:
        return []
    age = outbound["oldest_pending_age_seconds"]
    if age is None or age <= OUTBOUND_LAG_ALERT_SECONDS:
        return []
    return [
        f"outbound: oldest pending delivery is {age / 3600:.1f} h old ({outbound['pending']} pending; "
        "`manage.py endpoint attempts ID`)"
    ]


def _quota_alerts(buckets: list[dict[str, Any]]) -> list[str]:
    found = []
    for bucket in buckets:
        if bucket["bucket"] != "plan" or not bucket["limit"]:
            continue
        if bucket["remaining"] <= bucket["limit"] * QUOTA_LOW_FRACTION:
            found.append(
                f"quota: {bucket['provider']} {bucket['unit']} plan has {bucket['remaining']} "
                f"of {bucket['limit']} left"
            )
    return found


def _job_alerts(jobs: list[dict[str, Any]]) -> list[str]:
    found = []
    for job in jobs:
        age = job["last_success_age_seconds"]
        if age is not None and age > JOB_OVERDUE_INTERVALS * job["interval_seconds"]:
            found.append(f"job {job['job']}: last success {int(age // 60)} min ago")
        elif job["last_error"]:
            found.append(f"job {job['job']}: last run failed: {job['last_error'][:120]}")
    return found
