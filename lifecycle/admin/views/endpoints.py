"""Outbound endpoints: add (secret shown once), enable/disable, remove, replay, latest attempts.

The same service functions as `manage.py endpoint …` (lifecycle/outbound/endpoints.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import current_app, flash, redirect, render_template, url_for

from lifecycle.admin.blueprint import bp
from lifecycle.admin.forms import EndpointForm, ReplayForm
from lifecycle.admin.views import reading, writing
from lifecycle.db import utcnow
from lifecycle.outbound import endpoints


@bp.route("/endpoints", methods=["GET", "POST"])
def endpoints_page():  # type: ignore[no-untyped-def]
    form, created = EndpointForm(), None
    if form.validate_on_submit():
        events = [e.strip() for e in (form.events.data or "").split(",") if e.strip()] or None
        allow_private = current_app.config["SETTINGS"].outbound_allow_private
        try:
            with writing() as session:
                endpoint = endpoints.add(session, (form.url.data or "").strip(), events, allow_private)
                created = {"id": endpoint.id, "url": endpoint.url, "secret": endpoint.secret}
        except endpoints.EndpointError as exc:
            flash(f"Not added: {exc}", "error")
    with reading() as session:
        rows = endpoints.describe(session)
        attempts = {row["id"]: endpoints.attempts(session, row["id"], 5) for row in rows}
    return render_template(
        "admin/endpoints.html", title="Outbound endpoints", form=form, replay=ReplayForm(), rows=rows,
        attempts=attempts, created=created, event_types=endpoints.EVENT_TYPES,
    )  # fmt: skip


def _act(action: Callable[[], str]):  # type: ignore[no-untyped-def]
    try:
        flash(action(), "ok")
    except endpoints.EndpointError as exc:
        flash(str(exc), "error")
    return redirect(url_for("admin.endpoints_page"))


def _switch(endpoint_id: int, enabled: bool):  # type: ignore[no-untyped-def]
    def switch() -> str:
        with writing() as session:
            endpoints.set_enabled(session, endpoint_id, enabled)
        return f"Endpoint {endpoint_id} {'enabled' if enabled else 'disabled'}."

    return _act(switch)


@bp.post("/endpoints/<int:endpoint_id>/enable")
def endpoint_enable(endpoint_id: int):  # type: ignore[no-untyped-def]
    return _switch(endpoint_id, True)


@bp.post("/endpoints/<int:endpoint_id>/disable")
def endpoint_disable(endpoint_id: int):  # type: ignore[no-untyped-def]
    return _switch(endpoint_id, False)


@bp.post("/endpoints/<int:endpoint_id>/remove")
def endpoint_remove(endpoint_id: int):  # type: ignore[no-untyped-def]
    def remove() -> str:
        with writing() as session:
            endpoints.remove(session, endpoint_id)
        return f"Endpoint {endpoint_id} removed, with its queued deliveries."

    return _act(remove)


@bp.post("/endpoints/<int:endpoint_id>/replay")
def endpoint_replay(endpoint_id: int):  # type: ignore[no-untyped-def]
    form = ReplayForm()

    def replay() -> str:
        try:
            hours = float(form.hours.data or "")
        except ValueError:
            raise endpoints.EndpointError("hours must be a number, like 24") from None
        if not form.validate_on_submit() or not 0 < hours <= 24 * 366:
            raise endpoints.EndpointError("hours must be between 0 and a year")
        with writing() as session:
            queued = endpoints.replay_range(session, utcnow() - timedelta(hours=hours), None, endpoint_id)
        return f"{queued} event(s) of the last {hours:g} hours queued again for endpoint {endpoint_id}."

    return _act(replay)
