"""Inbox and operations: failed rows, requeue, retry, cancel, and lifting a registration pause."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for

from lifecycle import runtime
from lifecycle.admin import pipeline
from lifecycle.admin.blueprint import bp
from lifecycle.admin.views import back_to, reading, selected_ids, writing
from lifecycle.inbox import service as inbox_service
from lifecycle.operations import pause
from lifecycle.operations.models import FAILED, IN_FLIGHT, PENDING

OPERATION_TABS = (FAILED, PENDING, IN_FLIGHT, "paused")


@bp.get("/inbox")
def inbox():  # type: ignore[no-untyped-def]
    with reading() as session:
        summary = pipeline.inbox_summary(session)
        failed = pipeline.failed_inbox(session)
        rows = [(row, row.body.decode("utf-8", errors="replace")[:4000]) for row in failed]
        return render_template("admin/inbox.html", title="Inbox", summary=summary, rows=rows)


@bp.post("/inbox/requeue")
def requeue():  # type: ignore[no-untyped-def]
    everything = request.form.get("all") == "yes"
    row = request.form.get("row", type=int)
    ids = [] if everything else ([row] if row else selected_ids())
    if not everything and not ids:
        flash("Nothing selected to requeue.", "error")
        return redirect(url_for("admin.inbox"))
    with writing() as session:
        count = inbox_service.requeue_failed(session, ids or None)
    runtime.signal(runtime.DRAIN_INBOX)
    flash(f"Requeued {count} failed row(s); the workers apply them again.", "ok")
    return redirect(url_for("admin.inbox"))


@bp.get("/operations")
def operations():  # type: ignore[no-untyped-def]
    tab = request.args.get("status", FAILED)
    tab = tab if tab in OPERATION_TABS else FAILED
    with reading() as session:
        pauses = pipeline.pauses(session)
        rows = (
            pipeline.paused_operations(session, pauses)
            if tab == "paused"
            else pipeline.operations(session, tab)
        )
        backlog = pipeline.backlog(session)
        return render_template("admin/operations.html", title="Operations", tab=tab, tabs=OPERATION_TABS,
                               rows=rows, pauses=pauses, backlog=backlog)  # fmt: skip


@bp.post("/operations/<verb>")
def operations_action(verb: str):  # type: ignore[no-untyped-def]
    back = back_to("admin.operations")
    if verb == "resume-registration":
        with writing() as session:
            lifted = pause.resume(session, "17track", "register")
        flash("Registration resumed." if lifted else "Registration was not paused.", "ok")
    elif verb in ("retry", "cancel"):
        ids = selected_ids()
        with writing() as session:
            count = (pipeline.retry if verb == "retry" else pipeline.cancel)(session, ids)
        flash(f"{verb}: {count} of {len(ids)} operation(s).", "ok" if count else "error")
    else:
        flash(f"Unknown action {verb!r}.", "error")
        return redirect(back)
    runtime.signal(runtime.FLUSH_OPERATIONS)
    return redirect(back)
