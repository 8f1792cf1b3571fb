"""The admin blueprint: every route needs a signed-in admin and, for a POST, its CSRF token."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from lifecycle.admin.auth import csrf

bp = Blueprint(
    "admin",
    __name__,
    url_prefix="/admin",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
# Reachable without signing in; everything else under /admin is not (checked before any view runs).
PUBLIC_ENDPOINTS = frozenset({"admin.sign_in", "admin.static"})
# Everything the pages use is served from here: no inline script, no CDN (the page works offline).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
)


@bp.before_request
def _require_admin():  # type: ignore[no-untyped-def]
    if request.endpoint not in PUBLIC_ENDPOINTS and not current_user.is_authenticated:
        return redirect(url_for("admin.sign_in", next=request.full_path.rstrip("?")))
    # CSRF is checked here rather than app-wide: webhooks and the token API must not need it.
    csrf.protect()
    return None


@bp.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError):  # type: ignore[no-untyped-def]
    message = "This form has expired or did not come from this site. Reload the page and try again."
    return render_template("admin/error.html", title="Form refused", message=message), 400


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
    return render_template("admin/error.html", title=exc.name, message=exc.description), exc.code


@bp.after_request
def _no_store(response):  # type: ignore[no-untyped-def]
    # Admin pages show operational data: keep them out of shared caches and the back-button cache.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response
