"""Wake the outbound sender once new deliveries are committed (never before: it would find nothing).

The signal goes through a debounced background Nudger (lifecycle/signals.py), so a drain of many
batches sends a handful of messages, and a broker outage only delays the sending until beat's
periodic task sweeps the deliveries up.
"""

from __future__ import annotations

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from lifecycle.signals import Nudger

SEND_TASK = "lifecycle.outbound.send"


def after_commit(session: Session) -> None:
    if not has_app_context():
        return
    session.info["outbound_wanted"] = True
    if not event.contains(session, "after_commit", _nudge):
        event.listen(session, "after_commit", _nudge)


def _nudge(session: Session) -> None:
    # A rolled-back savepoint may leave the flag set: one needless nudge costs nothing.
    if not session.info.pop("outbound_wanted", False) or not has_app_context():
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    nudger = app.extensions.get("outbound_nudger")
    if nudger is None:
        from lifecycle.celery import send_signal

        nudger = app.extensions.setdefault("outbound_nudger", Nudger(lambda: send_signal(app, SEND_TASK)))
    nudger.poke()
