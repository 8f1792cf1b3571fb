"""Sign-in machinery: Flask-Login's manager and Flask-WTF's CSRF protection, bound in `init_app`."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask_login import LoginManager, UserMixin
from flask_wtf.csrf import CSRFProtect

from lifecycle.admin import accounts
from lifecycle.admin.models import AdminUser
from lifecycle.extensions import db

SESSION_LIFETIME = timedelta(hours=12)
csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "admin.sign_in"
login_manager.login_message = "Sign in to see that page."


class Operator(UserMixin):
    """The signed-in admin as Flask-Login sees it: a detached copy, safe outside its session."""

    def __init__(self, user: AdminUser) -> None:
        self.user_id = user.id
        self.email = user.email
        self._session_id = accounts.session_id(user)

    def get_id(self) -> str:
        return self._session_id


@login_manager.user_loader
def _load(session_id: str) -> Operator | None:
    with db.new_session() as session:
        user = accounts.load(session, session_id)
        return Operator(user) if user else None


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    app.config.update(
        # Only the admin blueprint checks CSRF (see blueprint.py); the webhooks and the API do not.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
        SESSION_COOKIE_NAME="lifecycle_session",
        # A signed-in session ends after this, whatever the browser keeps (sign_in sets it permanent).
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    csrf.init_app(app)
    login_manager.init_app(app)
