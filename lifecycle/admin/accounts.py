"""Admin accounts: creation, the first admin from the environment, and throttled sign-in."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from config.settings import ADMIN_EMAIL_MAX_LENGTH, checked_admin_account, normalise_admin_email
from lifecycle.admin.models import AdminUser, SignInThrottle
from lifecycle.db import utcnow
from lifecycle.sqlutil import insert_ignoring_conflicts

log = logging.getLogger(__name__)
# Failures allowed before the throttle starts; then each failure doubles the wait, up to the cap.
FREE_FAILURES = 3
FIRST_LOCK_SECONDS = 5
MAX_LOCK_SECONDS = 15 * 60
# Checked against when the email is unknown, so both answers take the same time.
_DUMMY_HASH = generate_password_hash("not-a-password-" + secrets.token_hex(8))


class AccountError(ValueError):
    """The account cannot be created as asked (bad email, short password, duplicate)."""


@dataclass(frozen=True)
class SignIn:
    user: AdminUser | None
    # Seconds to wait before the next attempt is even checked; 0 when not locked.
    retry_after: int = 0


def create_admin(session: Session, email: str, password: str) -> AdminUser:
    email = _checked(email, password)
    if find(session, email) is not None:
        raise AccountError(f"an admin {email} already exists")
    user = AdminUser(email=email, password_hash=generate_password_hash(password), session_token=_token())
    session.add(user)
    session.flush()
    return user


def ensure_first_admin(session: Session, email: str, password: str) -> bool:
    """Create the admin named by ADMIN_EMAIL / ADMIN_PASSWORD unless it exists; True if created.

    Run by every process at start: two starting at once both insert, and the unique email keeps one
    (ON CONFLICT DO NOTHING), so neither fails. An existing admin is left as it is, password included.
    Settings checked the pair already, with the same rule as _checked.
    """
    email = _checked(email, password)
    if find(session, email) is not None:
        return False  # the common case, without paying for a password hash
    row = {"email": email, "password_hash": generate_password_hash(password), "session_token": _token(),
           "created_at": utcnow()}  # fmt: skip
    return insert_ignoring_conflicts(session, AdminUser, [row], ["email"]) == 1


def _checked(email: str, password: str) -> str:
    """The normalised email, or AccountError saying what is wrong with the pair."""
    try:
        return checked_admin_account(email, password)
    except ValueError as exc:
        raise AccountError(str(exc)) from None


def find(session: Session, email: str) -> AdminUser | None:
    return session.scalars(select(AdminUser).where(AdminUser.email == normalise_admin_email(email))).first()


def load(session: Session, session_id: str) -> AdminUser | None:
    """The user a session cookie names, if its token is still current (see AdminUser.session_token)."""
    user_id, _, token = session_id.partition(":")
    if not user_id.isdigit() or not token:
        return None
    user = session.get(AdminUser, int(user_id))
    if user is None or not secrets.compare_digest(user.session_token, token):
        return None
    return user


def sign_in(session: Session, email: str, password: str, now: datetime | None = None) -> SignIn:
    """Check a password, refusing without checking while this email is locked after failures."""
    now = now or utcnow()
    email = normalise_admin_email(email)[:ADMIN_EMAIL_MAX_LENGTH]
    throttle = _throttle(session, email)
    if throttle.locked_until and throttle.locked_until > now:
        log.warning("admin sign-in refused for %s: locked after %d failures", email, throttle.failures)
        return SignIn(None, _seconds_until(throttle.locked_until, now))
    user = find(session, email)
    ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    if ok and user is not None:
        throttle.failures, throttle.locked_until = 0, None
        user.last_sign_in_at = now
        log.info("admin %s signed in", email)
        return SignIn(user)
    throttle.failures += 1
    throttle.last_failure_at = now
    log.warning("admin sign-in failed for %s (%d in a row)", email, throttle.failures)
    if throttle.failures >= FREE_FAILURES:
        seconds = min(MAX_LOCK_SECONDS, FIRST_LOCK_SECONDS * 2 ** (throttle.failures - FREE_FAILURES))
        throttle.locked_until = now + timedelta(seconds=seconds)
        return SignIn(None, seconds)
    return SignIn(None)


def sign_out_everywhere(user: AdminUser) -> None:
    """Invalidate every session cookie issued to this user so far."""
    user.session_token = _token()


def session_id(user: AdminUser) -> str:
    return f"{user.id}:{user.session_token}"


def _throttle(session: Session, email: str) -> SignInThrottle:
    insert_ignoring_conflicts(session, SignInThrottle, [{"email": email, "failures": 0}], ["email"])
    stmt = select(SignInThrottle).where(SignInThrottle.email == email).with_for_update()
    return session.scalars(stmt).one()


def _seconds_until(when: datetime, now: datetime) -> int:
    return max(1, int((when - now).total_seconds() + 0.999))


def _token() -> str:
    return secrets.token_urlsafe(24)
