"""Sign in and out."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from lifecycle.admin import accounts
from lifecycle.admin.auth import Operator
from lifecycle.admin.blueprint import bp
from lifecycle.admin.forms import SignInForm
from lifecycle.admin.models import AdminUser
from lifecycle.admin.views import local_url, writing


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():  # type: ignore[no-untyped-def]
    if current_user.is_authenticated:
        return redirect(url_for("admin.overview"))
    form = SignInForm()
    status, error = 200, None
    if form.validate_on_submit():
        with writing() as db_session:
            result = accounts.sign_in(db_session, form.email.data or "", form.password.data or "")
            operator = Operator(result.user) if result.user else None
        if operator is not None:
            return _start_session(operator)
        if result.retry_after:
            status = 429
            error = f"Too many failed sign-ins for this email. Try again in {result.retry_after} seconds."
        else:
            status, error = 401, "Wrong email or password."
    elif request.method == "POST":
        status = 400
    return render_template("admin/sign_in.html", form=form, error=error, title="Sign in"), status


def _start_session(operator: Operator):  # type: ignore[no-untyped-def]
    target = local_url(request.args.get("next"), url_for("admin.overview"))
    # A new session at sign-in: whatever the browser had before (a planted cookie) is dropped.
    session.clear()
    session.permanent = True
    login_user(operator)
    return redirect(target)


@bp.post("/sign-out")
def sign_out():  # type: ignore[no-untyped-def]
    with writing() as db_session:
        user = db_session.get(AdminUser, current_user.user_id)
        if user is not None:
            accounts.sign_out_everywhere(user)
    logout_user()
    session.clear()
    flash("Signed out.")
    return redirect(url_for("admin.sign_in"))
