"""Per-app collaborators built from settings: inbox writer, worker signals, provider client."""

from __future__ import annotations

from flask import Flask, current_app

from config.settings import Settings
from lifecycle.accounting.ledger import Account
from lifecycle.accounting.rules import load_rules
from lifecycle.accounting.service import build_accounts, in_force
from lifecycle.celery import send_signal
from lifecycle.extensions import db
from lifecycle.inbox.writer import InboxWriter
from lifecycle.providers.client17 import SeventeenTrackClient
from lifecycle.providers.client_cargoai import CargoAiClient
from lifecycle.ratelimit import make_limiter
from lifecycle.signals import Nudger

DRAIN_INBOX = "lifecycle.inbox.drain"
FLUSH_OPERATIONS = "lifecycle.operations.flush"
SWEEP = "lifecycle.maintenance.sweep"

# 17TRACK counts requests as they arrive; a slightly longer window absorbs network jitter (40 ms
# either way) so that calls bunched in transit still never exceed the limit in any one second at
# the provider, at the price of 4% of the throughput.
WINDOW_SECONDS = 1.04


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


def client17() -> SeventeenTrackClient:
    client = current_app.extensions.get("client17")
    if client is None:
        config = settings()
        limiter = make_limiter(
            config.shared_limiter_url, config.var_dir, config.seventeentrack_rate_per_second, WINDOW_SECONDS
        )
        client = SeventeenTrackClient(
            config.seventeentrack_api_url,
            config.seventeentrack_api_key.get_secret_value(),
            limiter,
            config.seventeentrack_timeout_seconds,
        )
        current_app.extensions["client17"] = client
    return client


def signal(task_name: str) -> bool:
    """Best-effort signal to the workers; False if the broker is unreachable."""
    try:
        send_signal(current_app._get_current_object(), task_name)  # type: ignore[attr-defined]
    except Exception:
        current_app.logger.warning("broker unreachable; %s left to the sweeper", task_name)
        return False
    return True


def cargoai_client() -> CargoAiClient:
    client = current_app.extensions.get("client_cargoai")
    if client is None:
        config = settings()
        limiter = make_limiter(config.shared_limiter_url, config.var_dir, config.cargoai_rate_per_second, 1.0)
        client = CargoAiClient(
            config.cargoai_api_url,
            config.cargoai_api_key.get_secret_value(),
            limiter,
            config.seventeentrack_timeout_seconds * 3,  # CargoAi answers in 1 s to 30 s (awb.md §1.2)
        )
        current_app.extensions["client_cargoai"] = client
    return client
