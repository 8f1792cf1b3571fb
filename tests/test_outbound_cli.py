"""`manage.py endpoint …` end to end, and outbound events sent by a real worker after the drain commits."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import config.settings
from lifecycle.cli import cli, context
from lifecycle.outbound.models import OutboundEvent
from lifecycle.outbound.signing import PREFIX
from tests.helpers import count, delivered, in_transit, post_push, wait_for
from tests.outbound_support import EventReceiver, drain, send
from tests.test_pipeline import running_worker


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    with EventReceiver() as server:
        yield server


@pytest.fixture
def manage(app, monkeypatch):  # type: ignore[no-untyped-def]
    """Runs `manage.py ARGS…` against the test app and its database; returns the output."""
    monkeypatch.setattr(context, "_app", app)
    monkeypatch.setattr(config.settings, "get_settings", lambda: app.config["SETTINGS"])

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    return run


def test_add_list_disable_enable_replay_remove(app, client, receiver, manage):
    added = json.loads(manage("endpoint", "add", receiver.url, "--events", "delivered,exception", "--json"))
    assert added["secret"].startswith(PREFIX) and added["events"] == ["delivered", "exception"]
    [listed] = json.loads(manage("endpoint", "list", "--json"))["endpoints"]
    assert "secret" not in listed and listed["enabled"] is True and listed["pending"] == 0
    post_push(client, in_transit("RR1", 10))
    post_push(client, delivered("RR1", 30))
    drain(app)
    send(app)
    [sent] = receiver.accepted()
    [attempt] = json.loads(manage("endpoint", "attempts", str(added["id"]), "--json"))["attempts"]
    assert (attempt["event"], attempt["status_code"], attempt["response"]) == (sent["id"], 200, "ok")
    assert attempt["type"] == "delivered" and attempt["delivery"] == "delivered"
    manage("endpoint", "disable", str(added["id"]))
    assert "disabled" in manage("endpoint", "list")
    manage("endpoint", "enable", str(added["id"]))
    assert json.loads(manage("endpoint", "replay", "--event", sent["id"], "--json")) == {"queued": 1}
    replayed = manage("endpoint", "replay", "--since", "2000-01-01T00:00:00", "--until", "2000-01-02")
    assert replayed.strip() == "0 deliveries queued"
    send(app)
    assert [body["id"] for body in receiver.accepted()] == [sent["id"], sent["id"]]
    manage("endpoint", "remove", str(added["id"]))
    assert json.loads(manage("endpoint", "list", "--json")) == {"endpoints": []}


def test_unknown_event_types_and_bad_urls_are_refused(app, manage):
    result = CliRunner().invoke(cli, ["endpoint", "add", "http://127.0.0.1:9/x", "--events", "shipped"])
    assert result.exit_code == 1 and "unknown event types shipped" in result.output
    result = CliRunner().invoke(cli, ["endpoint", "add", "ftp://example.com/"])
    assert result.exit_code == 1 and "not an http(s) URL" in result.output


def test_private_addresses_are_refused_when_not_allowed(settings_factory, monkeypatch):
    from lifecycle import create_app

    app = create_app(settings_factory(outbound_allow_private=False))
    monkeypatch.setattr(context, "_app", app)
    result = CliRunner().invoke(cli, ["endpoint", "add", "http://127.0.0.1:8000/hook"])
    assert result.exit_code == 1 and "non-public address 127.0.0.1" in result.output


def test_a_worker_sends_the_event_once_the_drain_has_committed(app, client, receiver, manage):
    manage("endpoint", "add", receiver.url)
    with running_worker(app), app.app_context():
        assert post_push(client, delivered("RR1")).status_code == 200
        wait_for(lambda: receiver.accepted(), timeout=60)
        assert count(OutboundEvent) == 1
    assert [body["type"] for body in receiver.accepted()] == ["delivered"]
