"""The admin console: server-rendered pages over the same service functions as the CLI."""

from __future__ import annotations

from flask import Blueprint, Flask, redirect, url_for
from flask_login import current_user

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
