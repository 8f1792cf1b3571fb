"""Shipments: the filtered list, CSV export, bulk actions, one shipment and its commands."""

from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, stream_with_context

from lifecycle import runtime
from lifecycle.admin import actions, shipment_list, story
from lifecycle.admin.blueprint import bp
from lifecycle.admin.shipment_list import BadFilter, Filters, Page
from lifecycle.admin.views import after_change, back_to, reading, selected_ids, tz
from lifecycle.extensions import db
from lifecycle.providers import registry
from lifecycle.status import STATUSES, TRACKING_STATES


@bp.get("/shipments")
def shipments():  # type: ignore[no-untyped-def]
    error, filters, page = None, Filters(), Page()
    try:
        filters = Filters.from_args(request.args)
        with reading() as session:
            page = shipment_list.page(session, filters, tz(), request.args.get("after", ""),
                                      request.args.get("before", ""))  # fmt: skip
    except BadFilter as exc:
        error = str(exc)
    return render_template(
        "admin/shipments.html", title="Shipments", filters=filters, page=page, error=error,
        statuses=STATUSES, tracking_states=TRACKING_STATES, providers=sorted(registry.names()),
        sorts=shipment_list.SORTS, bulk_actions=actions.BULK_ACTIONS,
    ), (400 if error else 200)  # fmt: skip


@bp.get("/shipments.csv")
def export_csv():  # type: ignore[no-untyped-def]
    try:
        filters = Filters.from_args(request.args)
    except BadFilter as exc:
        abort(400, str(exc))
    zone = tz()

    def lines():  # type: ignore[no-untyped-def]
        # A read session: a long export must not hold SQLite's write lock while it streams.
        with reading() as session:
            yield from shipment_list.csv_lines(session, filters, zone)

    headers = {"Content-Disposition": 'attachment; filename="shipments.csv"'}
    return Response(stream_with_context(lines()), mimetype="text/csv", headers=headers)


@bp.post("/shipments/bulk")
def bulk():  # type: ignore[no-untyped-def]
    action, ids = request.form.get("action", ""), selected_ids()
    back = back_to("admin.shipments")
    if not ids:
        flash("Select at least one shipment first.", "error")
        return redirect(back)
    if action == "delete" and request.form.get("confirm") != "yes":
        with reading() as session:
            cost = actions.reregistration_cost(session, runtime.accounts_in_force(), ids)
        return render_template("admin/confirm_delete.html", title="Confirm delete", cost=cost, back=back)
    results = actions.run_bulk(db.new_session, action, ids)
    if any(r.ok for r in results):
        after_change()  # the overview shows the new tracking states at once
        runtime.signal(runtime.FLUSH_OPERATIONS)
    return render_template("admin/results.html", title=f"Bulk {action}", action=action, results=results,
                           back=back)  # fmt: skip


@bp.get("/shipments/<provider>/<number>")
def shipment(provider: str, number: str):  # type: ignore[no-untyped-def]
    with reading() as session:
        found = story.story(
            session, runtime.account(provider), provider, number, request.args.get("carrier", type=int)
        )
        if found is None:
            abort(404, f"No {provider} shipment {number}.")
        return render_template("admin/shipment.html", title=f"{found.shipment.number}", story=found)


@bp.post("/shipments/<int:shipment_id>/<action>")
def command(shipment_id: int, action: str):  # type: ignore[no-untyped-def]
    back = back_to("admin.shipments")
    if action == "delete" and request.form.get("confirm") != "yes":
        flash("Tick the confirmation first: deleting is final, and registering again is charged.", "error")
        return redirect(back)
    args = {k: request.form.get(k, "") for k in ("new_carrier", "lang")}
    result = actions.run(db.new_session, action, shipment_id, **args)
    if result.ok:
        after_change()
        runtime.signal(runtime.FLUSH_OPERATIONS)
    flash(f"{action} {result.number}: {result.message}", "ok" if result.ok else "error")
    return redirect(back)
