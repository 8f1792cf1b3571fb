"""Admin sign-in and its protections: every admin route, CSRF, throttling, sessions, cookies."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from click.testing import CliRunner
from pydantic import ValidationError
from sqlalchemy import func, select

from config.settings import Settings, get_settings
from lifecycle import create_app, migrate
from lifecycle.admin import accounts
from lifecycle.admin.models import AdminUser
from lifecycle.db import utcnow
from lifecycle.extensions import db
from tests.admin_support import EMAIL, PASSWORD, create_admin, csrf, sign_in


def _example_path(rule) -> str:  # type: ignore[no-untyped-def]
    """A concrete path for a URL rule, with made-up values for its arguments."""
    values = {"provider": "17track", "number": "RR123456789CN", "filename": "admin.css"}
    path = rule.rule
    for name in rule.arguments:
        converter = rule._converters[name].__class__.__name__
        path = re.sub(
            rf"<(?:[^:<>]+:)?{name}>", "1" if converter == "IntegerConverter" else values.get(name, "x"), path
        )
    return path


def test_every_admin_route_sends_an_anonymous_visitor_to_sign_in(app):
    client = app.test_client()
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/admin") or rule.endpoint in ("admin.sign_in", "admin.static"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(_example_path(rule), method=method)
            assert response.status_code == 302, (rule.rule, method, response.status_code)
            assert response.location.startswith("/admin/sign-in"), rule.rule
            checked += 1
    assert checked >= 15


def test_every_api_route_answers_401_without_a_token(app):
    client = app.test_client()
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/api")]
    assert len(rules) >= 4
    for rule in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(_example_path(rule), method=method, json={})
            assert response.status_code == 401, (rule.rule, method)


def test_root_sends_anonymous_to_sign_in_and_an_operator_to_the_overview(app):
    client = app.test_client()
    assert client.get("/").location.endswith("/admin/sign-in")
    assert sign_in(client).status_code == 302
    assert client.get("/").location.endswith("/admin/")
    assert "Overview" in client.get("/admin/").get_data(as_text=True)


def test_sign_in_with_the_right_password_and_sign_out(app):
    client = app.test_client()
    response = sign_in(client)
    assert response.status_code == 302 and response.location == "/admin/"
    assert client.get("/admin/shipments").status_code == 200
    token = csrf(client, "/admin/")
    assert client.post("/admin/sign-out", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/shipments").status_code == 302


def test_a_post_without_its_csrf_token_is_refused(app):
    client = app.test_client()
    assert client.post("/admin/sign-in", data={"email": EMAIL, "password": PASSWORD}).status_code == 400
    sign_in(client)
    response = client.post("/admin/inbox/requeue", data={"all": "yes"})
    assert response.status_code == 400 and "expired" in response.get_data(as_text=True)
    response = client.post("/admin/inbox/requeue", data={"all": "yes", "csrf_token": "forged"})
    assert response.status_code == 400


def test_webhooks_and_api_do_not_need_a_csrf_token(app):
    client = app.test_client()
    response = client.post("/webhooks/17track", data=b"{}", headers={"sign": "0" * 64})
    assert response.status_code == 401  # refused for its signature, not for a missing CSRF token


def test_wrong_passwords_are_slowed_down_then_locked_out(app, caplog):
    client = app.test_client()
    statuses = [sign_in(client, password="wrong password").status_code for _ in range(accounts.FREE_FAILURES)]
    assert statuses == [401] * (accounts.FREE_FAILURES - 1) + [429]
    assert f"admin sign-in failed for {EMAIL} (3 in a row)" in caplog.text  # the operator can see attacks
    locked = sign_in(client)  # even the right password waits while the email is locked
    assert locked.status_code == 429 and "Try again in" in locked.get_data(as_text=True)
    with time_machine.travel(utcnow() + timedelta(seconds=accounts.FIRST_LOCK_SECONDS + 1)):
        assert sign_in(client, password="wrong again").status_code == 429  # the next lock is longer
    later = utcnow() + timedelta(seconds=accounts.FIRST_LOCK_SECONDS + 2 * accounts.FIRST_LOCK_SECONDS + 2)
    with time_machine.travel(later):
        assert sign_in(client).status_code == 302


def test_unknown_emails_are_throttled_like_known_ones(app):
    client = app.test_client()
    codes = [
        sign_in(client, email="nobody@example.com").status_code for _ in range(accounts.FREE_FAILURES + 1)
    ]
    assert codes[-1] == 429


def test_the_session_changes_at_sign_in_and_an_old_cookie_dies_at_sign_out(app):
    client = app.test_client()
    client.get("/admin/sign-in")
    # What an attacker could have planted in a victim's session before the victim signs in.
    with client.session_transaction() as session:
        session["planted"] = "by someone else"
    before = client.get_cookie("lifecycle_session").value
    sign_in(client)
    signed_in = client.get_cookie("lifecycle_session").value
    assert signed_in != before
    with client.session_transaction() as session:
        assert "planted" not in session and session.get("_user_id")
    # A stolen copy of the signed-in cookie stops working once its owner signs out.
    thief = app.test_client()
    thief.set_cookie("lifecycle_session", signed_in)
    assert thief.get("/admin/shipments").status_code == 200
    client.post("/admin/sign-out", data={"csrf_token": csrf(client, "/admin/")})
    assert thief.get("/admin/shipments").status_code == 302
    sign_in(client)
    with client.session_transaction() as session:
        assert session["_user_id"] != _user_id_in(signed_in, app)  # a new token after sign-out


def _user_id_in(cookie: str, app) -> str:  # type: ignore[no-untyped-def]
    """The Flask-Login id a session cookie carries."""
    serializer = app.session_interface.get_signing_serializer(app)
    return serializer.loads(cookie)["_user_id"]


def test_session_cookie_flags(settings_factory):
    app = create_app(settings_factory(public_base_url="https://lifecycle.example.com"))
    create_admin(app)
    client = app.test_client()
    header = next(
        h for h in sign_in(client).headers.getlist("Set-Cookie") if h.startswith("lifecycle_session=")
    )
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" in header
    assert "Expires=" in header  # the signed-in session ends (after 12 h), not only with the browser
    db.engine.dispose()  # type: ignore[union-attr]


def test_sign_in_never_redirects_to_another_site(app):
    client = app.test_client()
    token = csrf(client)
    response = client.post(
        "/admin/sign-in?next=//evil.example/x",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
    )
    assert response.location == "/admin/"


def test_first_admin_is_created_at_start_without_anyone_signing_in(settings_factory, caplog):
    settings = settings_factory(admin_email="First@example.com", admin_password="first admin password")
    app = create_app(settings)
    with app.app_context(), db.new_session() as session:
        assert accounts.find(session, "first@example.com") is not None
    assert "first admin first@example.com created" in caplog.text.lower()
    create_app(settings)  # a second start (or a second process) leaves the one admin as it is
    with app.app_context(), db.new_session() as session:
        assert session.scalar(select(func.count()).select_from(AdminUser)) == 1
    assert sign_in(app.test_client(), "first@example.com", "first admin password").status_code == 302
    db.engine.dispose()  # type: ignore[union-attr]


def test_two_processes_creating_the_first_admin_at_once_make_one(app, monkeypatch):
    # Both checked before either inserted: the second insert meets the first's row and does nothing.
    monkeypatch.setattr(accounts, "find", lambda session, email: None)
    with app.app_context(), db.new_session() as session, session.begin():
        assert accounts.ensure_first_admin(session, EMAIL, "another password") is False
    monkeypatch.undo()
    with app.app_context(), db.new_session() as session:
        assert session.scalar(select(func.count()).select_from(AdminUser)) == 1
    assert sign_in(app.test_client()).status_code == 302  # the first one's password still works


def test_first_admin_waits_for_a_database_not_migrated_yet(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    values = {"database_url": url, "var_dir": tmp_path / "var", "broker_url": "filesystem://",
              "admin_email": "first@example.com", "admin_password": "first admin password",
              "_env_file": None}  # fmt: skip
    create_app(Settings(**values))  # starts: the tables are not there yet
    assert "first admin first@example.com not created" in caplog.text
    db.engine.dispose()  # type: ignore[union-attr]
    migrate.upgrade(url)
    app = create_app(Settings(**values))
    with app.app_context(), db.new_session() as session:
        assert accounts.find(session, "first@example.com") is not None
    db.engine.dispose()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"admin_email": "first@example.com", "admin_password": "short"}, "ADMIN_PASSWORD must have at"),
        ({"admin_email": "first@example.com"}, "ADMIN_EMAIL and ADMIN_PASSWORD go together"),
        ({"admin_password": "a long enough password"}, "ADMIN_EMAIL and ADMIN_PASSWORD go together"),
        ({"admin_email": "first", "admin_password": "a long enough password"}, "is not an email address"),
        ({"admin_email": "a@" + "b" * 298, "admin_password": "a long enough password"},
         "ADMIN_EMAIL is 300 characters long: at most 254"),
    ],
)  # fmt: skip
def test_a_wrong_first_admin_stops_the_start_with_a_clear_error(values, message):
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "email",
    ["a@" + "b" * 252, "a@" + "b" * 253, " First@Example.com ", "first", "\u0130" * 127 + "@x.io"],
)
def test_settings_accept_exactly_the_first_admins_that_can_be_created(app, email):
    # One rule for both: a first admin Settings accepts never fails later as an AccountError at start.
    try:
        Settings(_env_file=None, admin_email=email, admin_password=PASSWORD)  # type: ignore[call-arg]
        accepted = True
    except ValidationError:
        accepted = False
    with app.app_context(), db.new_session() as session, session.begin():
        try:
            created = accounts.ensure_first_admin(session, email, PASSWORD)
        except accounts.AccountError:
            created = False
    assert accepted == created


def test_a_short_admin_password_is_a_start_error_in_the_cli(monkeypatch):
    from lifecycle.cli import cli

    monkeypatch.setenv("ADMIN_EMAIL", "first@example.com")
    monkeypatch.setenv("ADMIN_PASSWORD", "short")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["status"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output
    assert "ADMIN_PASSWORD must have at least 10 characters" in result.output
    assert "Traceback" not in result.output


def test_create_admin_command_reads_the_password_from_stdin(settings_factory, monkeypatch):
    from lifecycle.cli import admin as admin_cli
    from lifecycle.cli import context

    settings = settings_factory()
    app = create_app(settings)
    monkeypatch.setattr(context, "_app", app)
    result = CliRunner().invoke(
        admin_cli.create_admin, ["New@Example.com", "--password-stdin"], input="a long password\n"
    )
    assert result.exit_code == 0, result.output
    prompted = CliRunner().invoke(admin_cli.create_admin, ["two@example.com"], input="second password\n" * 2)
    assert prompted.exit_code == 0 and "Repeat for confirmation" in prompted.output
    assert "second password" not in prompted.output  # typed, never echoed
    short = CliRunner().invoke(admin_cli.create_admin, ["x@example.com", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "at least" in short.output
    assert sign_in(app.test_client(), "new@example.com", "a long password").status_code == 302
    with app.app_context(), db.new_session() as session:
        stored = accounts.find(session, "new@example.com")
        assert stored is not None and "a long password" not in stored.password_hash
        assert stored.password_hash.startswith(("scrypt:", "pbkdf2:"))
    db.engine.dispose()  # type: ignore[union-attr]


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    """Signed out: these tests sign in (or fail to) themselves."""
    return app.test_client()
