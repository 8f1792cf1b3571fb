"""API tokens: list, create (shown once), revoke."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for

from lifecycle.admin import tokens
from lifecycle.admin.blueprint import bp
from lifecycle.admin.forms import TokenForm
from lifecycle.admin.views import reading, writing
from lifecycle.api.tokens import create_token


@bp.route("/tokens", methods=["GET", "POST"])
def tokens_page():  # type: ignore[no-untyped-def]
    form, new_token = TokenForm(), None
    if form.validate_on_submit():
        with writing() as session:
            new_token = create_token(session, (form.name.data or "").strip())
    with reading() as session:
        rows = tokens.all_tokens(session)
    return render_template("admin/tokens.html", title="API tokens", form=form, rows=rows, new_token=new_token)


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):  # type: ignore[no-untyped-def]
    with writing() as session:
        name = tokens.revoke(session, token_id)
    flash(f"Token {name!r} revoked." if name else "That token no longer exists.", "ok" if name else "error")
    return redirect(url_for("admin.tokens_page"))
