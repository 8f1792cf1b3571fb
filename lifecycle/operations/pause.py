"""Pausing an operation kind, e.g. registration when 17TRACK says the quota ran out.

Quota errors are not retried in a loop: the operations stay queued (nothing is dropped) and the
pause is visible to the operator until it expires (daily limit) or is lifted by hand (quota).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.db import utcnow
from lifecycle.operations.models import ServiceState

PREFIX = "pause:"


def _key(provider: str, kind: str) -> str:
    return f"{PREFIX}{provider}:{kind}"


def pause(session: Session, provider: str, kind: str, code: int, reason: str, until: datetime | None) -> None:
    value = {
        "code": code,
        "reason": reason,
        "since": utcnow().isoformat(),
        "until": until.isoformat() if until else None,
    }
    state = session.get(ServiceState, _key(provider, kind))
    if state is None:
        session.add(ServiceState(key=_key(provider, kind), value=value))
    elif state.value.get("code") != code:
        state.value = value


def current(session: Session, provider: str, kind: str) -> dict[str, Any] | None:
    """The pause in force, or None (an expired pause is lifted here)."""
    state = session.get(ServiceState, _key(provider, kind))
    if state is None:
        return None
    until = state.value.get("until")
    if until and datetime.fromisoformat(until) <= utcnow():
        session.delete(state)
        return None
    return dict(state.value)


def in_force(session: Session, now: datetime | None = None) -> dict[str, dict[str, Any]]:
    """Every pause not expired at `now`, by key, read only (service_state holds other rows too: the
    getquota snapshot, overage permissions, which are no pauses). The one reader of pauses for the
    CLI, the admin and the status report; an expired one is lifted by the sender's next round."""
    stmt = select(ServiceState).where(ServiceState.key.startswith(PREFIX, autoescape=True))
    now = now or utcnow()
    return {
        state.key: dict(state.value)
        for state in session.scalars(stmt)
        if not state.value.get("until") or datetime.fromisoformat(state.value["until"]) > now
    }


def resume(session: Session, provider: str, kind: str) -> bool:
    state = session.get(ServiceState, _key(provider, kind))
    if state is None:
        return False
    session.delete(state)
    return True


def next_utc_midnight() -> datetime:
    now = utcnow()
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
