"""Per-app collaborators built from settings: inbox writer, worker signals, provider client."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from config.settings import Settings
from lifecycle.accounting.ledger import Account
from lifecycle.accounting.rules import load_rules
from lifecycle.accounting.service import build_accounts, in_force
from lifecycle.celery import send_signal
from lifecycle.extensions import db
from lifecycle.inbox.writer import InboxWriter
from lifecycle.providers import registry
from lifecycle.signals import Nudger

DRAIN_INBOX = "lifecycle.inbox.drain"
FLUSH_OPERATIONS = "lifecycle.operations.flush"
SWEEP = "lifecycle.maintenance.sweep"


def init_app(app: Flask) -> None:
    drain_nudger = Nudger(lambda: send_signal(app, DRAIN_INBOX))
    app.extensions["inbox_writer"] = InboxWriter(db.new_session, on_committed=drain_nudger.poke)
    config: Settings = app.config["SETTINGS"]
    # Rule files are validated here, at start: a bad one stops the service with file:line.
    app.extensions["accounts"] = build_accounts(config, load_rules(config.quota_rules_dir))


def accounts() -> dict[str, Account]:
    return current_app.extensions["accounts"]


def account(provider: str) -> Account | None:
    """The provider's account, with a plan set by `manage.py plan --set` taking precedence."""
    configured = accounts().get(provider)
    if configured is None:
        return None
    # A read session: callers may hold a write transaction of their own (on SQLite a second writer
    # would wait for it, i.e. for itself, for the whole busy timeout).
    with db.read_session() as session:
        return in_force(session, configured)


def accounts_in_force() -> dict[str, Account]:
    return {provider: account(provider) for provider in accounts()}  # type: ignore[misc]


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def inbox_writer() -> InboxWriter:
    return current_app.extensions["inbox_writer"]


def client(provider: str) -> Any:
    """The provider's API client, built once per app by its adapter (behind the shared limiter)."""
    clients = current_app.extensions.setdefault("clients", {})
    if provider not in clients:
        clients[provider] = registry.get(provider).client(settings())
    return clients[provider]


def signal(task_name: str, countdown: float | None = None) -> bool:
    """Best-effort signal to the workers (run `countdown` seconds from now, if given); False if the
    broker is unreachable."""
    try:
        send_signal(current_app._get_current_object(), task_name, countdown)  # type: ignore[attr-defined]
    except Exception:
        current_app.logger.warning("broker unreachable; %s left to the sweeper", task_name)
        return False
    return True
