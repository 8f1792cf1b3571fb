"""Reconcile on a schedule: 17TRACK's list of numbers against ours, its quota count against our ledger.

The comparisons are those of `manage.py reconcile` and `quota --drift` (shipments/reconcile.py,
accounting/drift.py). The result is stored in the run's counts; an alert is raised once when a gap
appears and resolved when it closes, so a gap that comes back alerts again.

gettracklist is read a page (40 numbers) at a time, oldest registration first, and each page is
matched against our rows for its numbers at once, so memory does not grow with the account. The
time budget (CLEANUP_MAX_SECONDS) is checked after every page: at 3 requests/s a large account may
need more than one run, so a run that stops early says so (`stopped_early`, `more`), keeps what it
has counted in `list_pass`, and the next run continues from the next page. Numbers registered
meanwhile are appended to the list's end; one 17TRACK deletes meanwhile may shift a number past
the point where the pass resumes, which the next pass counts again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from lifecycle.cleanup.runs import (
    EXAMPLES,
    JobContext,
    batches,
    last_completed_run,
    raise_alert,
    resolve_alert,
)
from lifecycle.providers.seventeentrack import drift
from lifecycle.providers.seventeentrack.reconcile import _EXPECTED as EXPECTED_AT_17TRACK
from lifecycle.providers.seventeentrack.reconcile import tracklist_page
from lifecycle.shipments.models import Shipment

JOB = "reconcile"
LIST_ALERT = "reconcile:17track"
DRIFT_ALERT = "drift:17track"
# Oldest registration first: new numbers join the end, so the pages already read stay read.
LIST_ORDER = "RegisterTimeAsc"
TALLIES = ("provider_count", "matched", "only_at_provider", "state_mismatch")


def reconcile_daily(context: JobContext) -> None:
    """Compare gettracklist with our shipments and getquota with our ledger; alert on a new gap."""
    if not context.settings.seventeentrack_api_key.get_secret_value():
        context.counts["skipped"] = "no 17TRACK API key"
        return
    _compare_lists(context)
    _compare_quota(context)


def _ours() -> Any:
    return select(Shipment).where(
        Shipment.provider == "17track", Shipment.tracking.in_(list(EXPECTED_AT_17TRACK))
    )


def _compare_lists(context: JobContext) -> None:
    state = _resume_pass(context)
    context.counts["list_pass"] = state  # recorded with the run, whatever happens next
    client = context.get("client17")
    seen: set[tuple[str, int]] = set()
    while True:
        page = tracklist_page(client, state["next_page"], LIST_ORDER)
        state["page_total"] = page.page_total
        _match_page(context, state, page.numbers, seen)
        if context.progress is not None:
            context.progress(state["provider_count"], max(state["provider_count"], page.data_total))
        if state["next_page"] >= state["page_total"]:
            break
        state["next_page"] += 1
        # Checked per page, after at least one, so every run moves the pass on.
        if context.must_stop():
            why = "the job's lock was lost" if context.counts.get("lock_lost") else "CLEANUP_MAX_SECONDS"
            context.counts["stopped_early"] = (
                f"read gettracklist up to page {state['next_page'] - 1} of {state['page_total']} "
                f"({why}); the next run continues from page {state['next_page']} "
                "(no list alert is raised or resolved before the pass is complete)"
            )
            return
    del context.counts["list_pass"]
    _finish_pass(context, state, seen)


def _resume_pass(context: JobContext) -> dict[str, Any]:
    """The unfinished pass of the last real run, or a new one (a dry run always starts anew)."""
    if not context.dry_run:
        with context.session_factory() as session:
            previous = last_completed_run(session, JOB)
        unfinished = (previous.counts or {}).get("list_pass") if previous else None
        if unfinished:
            return {**unfinished, "runs": unfinished["runs"] + 1}
    return {
        "next_page": 1, "page_total": None, "runs": 1, "started_at": context.now.isoformat(),
        **dict.fromkeys(TALLIES, 0), "only_at_provider_examples": [], "state_mismatch_examples": [],
    }  # fmt: skip


def _match_page(
    context: JobContext, state: dict[str, Any], theirs: dict[tuple[str, int], str], seen: set[Any]
) -> None:
    """One page of their list against our rows for the same numbers (one query)."""
    seen.update(theirs)
    state["provider_count"] += len(theirs)
    numbers = sorted({number for number, _carrier in theirs})
    with context.session_factory() as session:
        rows = session.execute(
            select(Shipment.number, Shipment.carrier, Shipment.tracking).where(
                _ours().whereclause, Shipment.number.in_(numbers)
            )
        )
        ours = {(number, carrier): tracking for number, carrier, tracking in rows}
    for (number, carrier), status in theirs.items():
        here = ours.get((number, carrier))
        if here is None:
            state["only_at_provider"] += 1
            _example(
                state, "only_at_provider_examples", {"number": number, "carrier": carrier, "status": status}
            )
            continue
        state["matched"] += 1
        if EXPECTED_AT_17TRACK[here] != status:
            state["state_mismatch"] += 1
            item = {"number": number, "carrier": carrier, "here": here, "at_17track": status}
            _example(state, "state_mismatch_examples", item)


def _example(state: dict[str, Any], key: str, item: dict[str, Any]) -> None:
    if len(state[key]) < EXAMPLES:
        state[key].append(item)


def _finish_pass(context: JobContext, state: dict[str, Any], seen: set[Any]) -> None:
    """Ours not matched by any page are only here; the counts go into the run, the alert follows."""
    with context.session_factory() as session:
        local = session.scalar(select(func.count()).select_from(_ours().subquery())) or 0
    context.counts.update({key: state[key] for key in TALLIES})
    context.counts["local_count"] = local
    context.counts["only_here"] = max(0, local - state["matched"])
    for key in ("only_at_provider_examples", "state_mismatch_examples"):
        if state[key]:
            context.counts[key] = state[key]
    if state["runs"] > 1:
        context.counts["list_pass_runs"] = state["runs"]
    elif context.counts["only_here"]:
        _only_here_examples(context, seen)  # the whole list was read in this run: name a few
    gaps = {key: context.counts.get(key, 0) for key in ("only_at_provider", "only_here", "state_mismatch")}
    _alert_or_resolve(
        context,
        LIST_ALERT,
        any(gaps.values()),
        "17TRACK's list differs from ours: {only_at_provider} only at 17TRACK, {only_here} only here, "
        "{state_mismatch} in another state (manage.py reconcile lists them)".format(**gaps),
        gaps,
    )


def _only_here_examples(context: JobContext, seen: set[Any]) -> None:
    for _session, shipments in batches(context, _ours(), Shipment.id, lock=False):
        for shipment in shipments:
            if (shipment.number, shipment.carrier) not in seen:
                item = {"number": shipment.number, "carrier": shipment.carrier, "here": shipment.tracking}
                context.example("only_here_examples", item)
        if len(context.counts.get("only_here_examples", [])) >= EXAMPLES:
            return


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
