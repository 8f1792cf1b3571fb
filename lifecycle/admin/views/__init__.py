"""Admin views: each module adds its routes to the one admin blueprint."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from flask import current_app, request, url_for
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest

from lifecycle.extensions import db


def register_views() -> None:
    # Imported for their route decorators; once, before the blueprint is first registered.
    from lifecycle.admin.views import endpoints, pipeline, quota, shipments, sign_in, tokens  # noqa: F401


@contextmanager
def reading() -> Iterator[Session]:
    """A session for rendering a page. On SQLite it never takes the write lock, so an operator
    reading a page never holds up a worker that is applying pushes."""
    with db.read_session() as session:
        yield session


@contextmanager
def writing() -> Iterator[Session]:
    with db.new_session() as session, session.begin():
        yield session


def aggregates():  # type: ignore[no-untyped-def]
    """This process's cached overview aggregates (see admin.overview.Aggregates)."""
    from lifecycle.admin.overview import Aggregates

    return current_app.extensions.setdefault("admin_aggregates", Aggregates())


def shipment_counts(session: Session):  # type: ignore[no-untyped-def]
    """The overview's stored shipment counts (admin.counts), counted here only if none are stored."""
    from lifecycle.admin import counts

    return counts.current(session, db.read_session, db.new_session)


def after_change() -> None:
    """An operator's action changed shipments: the overview shows it at once, not at beat's next count."""
    from lifecycle.admin import counts

    aggregates().clear()
    counts.refresh(db.read_session, db.new_session)


def local_url(target: str | None, default: str) -> str:
    """`target` if it is a path on this site, else `default`: an open redirect would turn an admin
    link into a phishing aid."""
    parts = urlsplit(target or "")
    if not target or parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def back_to(default_endpoint: str) -> str:
    """Where a form asked to go back to (its `back` field), on this site only."""
    return local_url(request.form.get("back"), url_for(default_endpoint))


def selected_ids() -> list[int]:
    """The row ids ticked in a form (checkboxes named `ids`)."""
    try:
        return [int(value) for value in request.form.getlist("ids")]
    except ValueError:
        raise BadRequest("the selected rows could not be read") from None


def tz():  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    return ZoneInfo(current_app.config["SETTINGS"].account_timezone)
