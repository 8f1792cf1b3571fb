"""The admin console: server-rendered pages over the same service functions as the CLI."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, redirect, url_for
from flask_login import current_user

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger(__name__)
home = Blueprint("home", __name__)


@home.get("/")
def index():  # type: ignore[no-untyped-def]
    """The overview for a signed-in operator, the sign-in page for anyone else."""
    if current_user.is_authenticated:
        return redirect(url_for("admin.overview"))
    return redirect(url_for("admin.sign_in"))


def init_app(app: Flask) -> None:
    from lifecycle.admin import auth, formatting
    from lifecycle.admin.blueprint import bp
    from lifecycle.admin.views import register_views

    auth.init_app(app)
    formatting.init_app(app)
    register_views()
    app.register_blueprint(bp)
    app.register_blueprint(home)
    create_first_admin(app.config["SETTINGS"])


def create_first_admin(settings: Settings) -> None:
    """The admin named by ADMIN_EMAIL / ADMIN_PASSWORD, made at start if missing (Settings checked the
    pair). A database not migrated yet (or not reachable) is no reason to stop: the admin is made at
    the next start, and `manage.py create-admin` works meanwhile."""
    if not settings.admin_email or settings.admin_password is None:
        return
    from sqlalchemy.exc import SQLAlchemyError

    from lifecycle.admin import accounts
    from lifecycle.extensions import db

    password = settings.admin_password.get_secret_value()
    try:
        with db.new_session() as session, session.begin():
            created = accounts.ensure_first_admin(session, settings.admin_email, password)
    except SQLAlchemyError as exc:
        log.warning(
            "first admin %s not created (%s): it is created at the next start once `manage.py db upgrade` "
            "has run", settings.admin_email, str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200],
        )  # fmt: skip
        return
    if created:
        log.info("first admin %s created from ADMIN_EMAIL / ADMIN_PASSWORD", settings.admin_email)
