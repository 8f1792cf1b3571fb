"""Reconcile on a schedule: 17TRACK's list of numbers against ours, its quota count against our ledger.

The comparisons are those of `manage.py reconcile` and `quota --drift` (shipments/reconcile.py,
accounting/drift.py). The result is stored in the run's counts; an alert is raised once when a gap
appears and resolved when it closes, so a gap that comes back alerts again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from lifecycle.cleanup.runs import JobContext, batches, raise_alert, resolve_alert
from lifecycle.providers.seventeentrack import drift
from lifecycle.providers.seventeentrack.reconcile import _EXPECTED as EXPECTED_AT_17TRACK
from lifecycle.providers.seventeentrack.reconcile import provider_list
from lifecycle.shipments.models import Shipment

JOB = "reconcile"
LIST_ALERT = "reconcile:17track"
DRIFT_ALERT = "drift:17track"


def reconcile_daily(context: JobContext) -> None:
    """Compare gettracklist with our shipments and getquota with our ledger; alert on a new gap."""
    if not context.settings.seventeentrack_api_key.get_secret_value():
        context.counts["skipped"] = "no 17TRACK API key"
        return
    _compare_lists(context)
    _compare_quota(context)


def _compare_lists(context: JobContext) -> None:
    theirs = provider_list(context.get("client17"))
    context.counts["provider_count"] = len(theirs)
    stmt = select(Shipment).where(
        Shipment.provider == "17track", Shipment.tracking.in_(list(EXPECTED_AT_17TRACK))
    )
    # Ours are read in pages and matched off the provider's list: what is left there is only there.
    for _session, shipments in batches(context, stmt, Shipment.id, lock=False):
        for shipment in shipments:
            context.add("local_count")
            status = theirs.pop((shipment.number, shipment.carrier), None)
            item = {"number": shipment.number, "carrier": shipment.carrier, "here": shipment.tracking}
            if status is None:
                context.add("only_here")
                context.example("only_here_examples", item)
            elif EXPECTED_AT_17TRACK[shipment.tracking] != status:
                context.add("state_mismatch")
                context.example("state_mismatch_examples", {**item, "at_17track": status})
    if context.counts.get("more"):
        return  # an unfinished pass cannot tell what is only at 17TRACK
    context.counts["only_at_provider"] = len(theirs)
    for (number, carrier), status in list(theirs.items())[:50]:
        context.example("only_at_provider_examples", {"number": number, "carrier": carrier, "status": status})
    gaps = {key: context.counts.get(key, 0) for key in ("only_at_provider", "only_here", "state_mismatch")}
    _alert_or_resolve(
        context,
        LIST_ALERT,
        any(gaps.values()),
        "17TRACK's list differs from ours: {only_at_provider} only at 17TRACK, {only_here} only here, "
        "{state_mismatch} in another state (manage.py reconcile lists them)".format(**gaps),
        gaps,
    )


def _compare_quota(context: JobContext) -> None:
    account = context.get("account17")
    if account is None:
        return
    with context.session_factory() as session, session.begin():
        if context.dry_run:
            # getquota is read-only; refresh would also record the emails it reports in the ledger.
            theirs = int(context.get("client17").call("getquota", []).get("quota_used") or 0)
            ours = drift.our_count(session, account, context.now)
            snapshot: dict[str, Any] = {"ours": ours, "theirs": theirs, "difference": theirs - ours}
        else:
            snapshot = drift.refresh(session, account, context.get("client17"), context.now)
    context.counts["drift"] = {key: snapshot.get(key) for key in ("ours", "theirs", "difference")}
    context.counts["drift_explanations"] = snapshot.get("explanations", [])
    message = (
        f"quota drift: 17TRACK counts {snapshot['theirs']} units, our ledger {snapshot['ours']} "
        f"({snapshot['difference']:+d}); manage.py quota --drift explains what it can"
    )
    _alert_or_resolve(context, DRIFT_ALERT, snapshot["difference"] != 0, message, context.counts["drift"])


def _alert_or_resolve(
    context: JobContext, key: str, gap: bool, message: str, details: dict[str, Any]
) -> None:
    if context.dry_run:
        return
    with context.session_factory() as session, session.begin():
        if gap:
            context.add("alerts_raised", raise_alert(session, JOB, key, message, details))
        else:
            context.add("alerts_resolved", resolve_alert(session, key))
