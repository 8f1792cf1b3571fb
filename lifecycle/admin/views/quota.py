"""Overview and the quota and costs page."""

from __future__ import annotations

from datetime import timedelta

from flask import flash, redirect, render_template, url_for

from lifecycle import runtime
from lifecycle.admin import charts, overview, quota_page
from lifecycle.admin.blueprint import bp
from lifecycle.admin.views import aggregates, reading, shipment_counts, writing


@bp.get("/", endpoint="overview")
def overview_page():  # type: ignore[no-untyped-def]
    with reading() as session:
        silent_after = timedelta(seconds=runtime.settings().worker_stale_after_seconds)
        data = overview.overview(
            session, runtime.accounts_in_force, aggregates(), shipment_counts(session), silent_after
        )
        return render_template("admin/overview.html", title="Overview", data=data)


@bp.get("/quota")
def quota():  # type: ignore[no-untyped-def]
    with reading() as session:
        pages = [
            quota_page.provider_page(session, account) for account in runtime.accounts_in_force().values()
        ]
        alerts = quota_page.open_alerts(session)
        return render_template(
            "admin/quota.html", title="Quota and costs", pages=pages, alerts=alerts, charts=charts
        )


@bp.post("/alerts/<int:alert_id>/acknowledge")
def acknowledge(alert_id: int):  # type: ignore[no-untyped-def]
    with writing() as session:
        done = quota_page.acknowledge(session, alert_id)
    flash(
        "Alert acknowledged." if done else "That alert was already acknowledged.", "ok" if done else "error"
    )
    return redirect(url_for("admin.quota"))
