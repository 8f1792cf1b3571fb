"""Logs: structured lines with request and task ids, and never a body or a secret."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from click.testing import CliRunner
from sqlalchemy.engine import make_url

import config.settings
from config.settings import Settings
from lifecycle import create_app
from lifecycle.api.tokens import create_token
from lifecycle.extensions import db
from lifecycle.observability.logs import make_handler
from lifecycle.providers.seventeentrack import webhook as st
from simulators.seventeentrack import pushes
from tests.admin_support import create_admin, sign_in
from tests.asgi_client import intake_client
from tests.conftest import API_KEY
from tests.helpers import at, delivered, post_push, wait_for
from tests.outbound_support import FAST_RETRIES, EventReceiver

CARGOAI_KEY = "cargo-key-5e5a1b2c"
CALLBACK_TOKEN = "callback-token-7f3e9d"
ADMIN_PASSWORD = "admin-pass-4c1d8e"
DB_PASSWORD = "db-pass-2b7f61"
# Only in the bodies: a body that reached a log line would bring it along.
BODY_MARKER = "BODY-MARKER-0b9a"


@contextmanager
def captured(settings: Settings) -> Iterator[tuple[io.StringIO, list[logging.LogRecord]]]:
    """What our handler writes (formatted, masked) and every raw record, at DEBUG, from all loggers."""
    stream, records = io.StringIO(), []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    handlers = [make_handler(settings, stream), Keep()]
    level = root.level
    root.setLevel(logging.DEBUG)
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield stream, records
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(level)


def raw_text(records: list[logging.LogRecord]) -> str:
    """Each record as it was logged, before any masking: a secret must not even get this far."""
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.append(repr({k: v for k, v in vars(record).items() if k not in ("msg", "args")}))
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)


def _every_secret_path(app, token: str) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    marked = pushes.tracking_updated("LG1", 3011, "Delivered", "Delivered_Other", at(48), BODY_MARKER)
    body = pushes.encode(marked)
    assert (
        client.post("/webhooks/17track", data=body, headers={"sign": st.sign(body, API_KEY)}).status_code
        == 200
    )
    assert client.post("/webhooks/17track", data=body, headers={"sign": "bad"}).status_code == 401
    assert client.post("/webhooks/17track", data=b"{" + BODY_MARKER.encode(), headers={
        "sign": st.sign(b"{" + BODY_MARKER.encode(), API_KEY)}).status_code == 400  # fmt: skip
    callback = json.dumps({"awb": "176-12345675", "events": [{"code": BODY_MARKER}]}).encode()
    for bearer in (CALLBACK_TOKEN, "wrong-token"):
        client.post("/webhooks/cargoai", data=callback, headers={"Authorization": f"Bearer {bearer}"})
    for value in (token, "not-a-token"):
        client.get("/api/shipments", headers={"Authorization": f"Bearer {value}"})
    basic = base64.b64encode(f"x:{ADMIN_PASSWORD}".encode()).decode()
    client.get("/api/shipments", headers={"Authorization": f"Basic {basic}"})
    create_admin(app, password=ADMIN_PASSWORD)
    sign_in(client, password="not-the-password")
    assert sign_in(client, password=ADMIN_PASSWORD).status_code in (302, 303)


def _outbound_events(app, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    """An endpoint added, an event failed, sent and replayed; the endpoint's `whsec_…` secret."""
    from lifecycle.cli import cli, context
    from workers import tasks

    monkeypatch.setattr(context, "_app", app)
    monkeypatch.setattr(config.settings, "get_settings", lambda: app.config["SETTINGS"])

    def manage(*args: str) -> dict:  # type: ignore[type-arg]
        result = CliRunner().invoke(cli, ["endpoint", *args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    with EventReceiver() as receiver:
        added = manage("add", receiver.url)
        post_push(app.test_client(), delivered("LG4"))
        receiver.down = True
        with app.app_context():
            tasks.drain_inbox.apply()
            wait_for(lambda: tasks.send_outbound.apply().result["retrying"], timeout=30, interval=0.05)
            receiver.down = False
            wait_for(lambda: tasks.send_outbound.apply().result["delivered"], timeout=30, interval=0.05)
            [sent, *_] = receiver.accepted()
            assert manage("replay", "--event", sent["id"]) == {"queued": 1}
            wait_for(lambda: tasks.send_outbound.apply().result["delivered"], timeout=30, interval=0.05)
    return added["secret"]


def _with_password(url: str) -> str:
    """The database URL with a password (PostgreSQL here trusts local connections, so any will do)."""
    if url.startswith("sqlite"):
        return url  # a file has no password
    return make_url(url).set(password=DB_PASSWORD).render_as_string(hide_password=False)


def test_no_secret_and_no_body_ever_reaches_the_logs(settings_factory, sim, monkeypatch):
    database_url = _with_password(settings_factory().database_url)
    settings = settings_factory(
        database_url=database_url,
        seventeentrack_api_url=sim.url,
        cargoai_api_key=CARGOAI_KEY,
        cargoai_callback_auth="bearer",
        cargoai_callback_token=CALLBACK_TOKEN,
        admin_password=ADMIN_PASSWORD,
        admin_email="first@example.com",
        **FAST_RETRIES,
    )
    app = create_app(settings)
    from workers import tasks

    with app.app_context(), db.new_session() as session, session.begin():
        token = create_token(session, "logging test")
    with captured(settings) as (stream, records):
        _every_secret_path(app, token)
        post_push(app.test_client(), delivered("LG2"))
        with app.app_context():
            tasks.drain_inbox.apply()
            tasks.flush_operations.apply()  # 17TRACK calls carry the API key in a header
        endpoint_secret = _outbound_events(app, monkeypatch)
    formatted, raw = stream.getvalue(), raw_text(records)
    assert "webhook refused" in formatted and "operations sent" in formatted  # the scenario logged
    assert "outbound events sent" in formatted and endpoint_secret.startswith("whsec_")
    secrets = [API_KEY, CARGOAI_KEY, CALLBACK_TOKEN, ADMIN_PASSWORD, token, BODY_MARKER, endpoint_secret]
    secrets += [DB_PASSWORD] if DB_PASSWORD in database_url else []
    for secret in secrets:
        assert secret not in formatted, f"{secret!r} in the log output"
        assert secret not in raw, f"{secret!r} logged (even before masking)"
    db.engine.dispose()  # type: ignore[union-attr]


@pytest.mark.parametrize("intake", ["wsgi", "asgi"])
def test_web_lines_carry_the_request_id_and_worker_lines_the_task_id(app, intake):
    from workers import tasks

    settings = app.config["SETTINGS"]
    with (
        captured(settings.model_copy(update={"log_format": "json"})) as (stream, _),
        intake_client(app, intake) as client,
    ):
        client.post("/webhooks/17track", data=b"{}", headers={"sign": "bad", "X-Request-ID": "req-42"})
        client.post("/webhooks/17track", data=b"{}", headers={"sign": "bad"})
        post_push(client, delivered("LG3"))
        with app.app_context():
            result = tasks.drain_inbox.apply()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    refused = [line for line in lines if line["msg"] == "webhook refused"]
    assert refused[0]["request_id"] == "req-42"
    assert (refused[0]["provider"], refused[0]["reason"], refused[0]["status"]) == (
        "17track",
        "bad_signature",
        401,
    )
    assert len(refused[1]["request_id"]) == 16 and refused[1]["request_id"] != "req-42"
    drained = [line for line in lines if line["msg"].startswith("inbox drained")]
    assert drained and drained[0]["task_id"] == result.id and drained[0]["task"] == "lifecycle.inbox.drain"


def test_text_lines_are_key_value_and_secrets_logged_by_mistake_are_masked(settings):
    stream = io.StringIO()
    handler = make_handler(settings.model_copy(update={"log_format": "text"}), stream)
    record = logging.makeLogRecord({
        "name": "lifecycle.test", "levelno": logging.WARNING, "levelname": "WARNING",
        "msg": "calling with %s and Authorization: Bearer abc.DEF-123", "args": (API_KEY,),
        "provider": "17track", "reason": "two words",
    })  # fmt: skip
    handler.handle(record)
    line = stream.getvalue().strip()
    assert API_KEY not in line and "abc.DEF-123" not in line
    assert "WARNING lifecycle.test: calling with *** and Authorization: Bearer ***" in line
    assert line.endswith('provider=17track reason="two words"')


def test_endpoint_secrets_and_passwords_inside_urls_are_masked(settings):
    stream = io.StringIO()
    configured = settings.model_copy(update={
        "log_format": "text",
        "database_url": "postgresql+psycopg://lifecycle:db-pass%2F42@db.internal/lifecycle",
        "broker_url": "redis://:broker-pass-81@redis.internal:6379/0",
        "limiter_url": "rediss://limiter:limiter-pass-77@redis.internal:6380/1",
    })  # fmt: skip
    handler = make_handler(configured, stream)
    leaks = [
        "endpoint 3 secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw==",  # an outbound endpoint's secret
        "cannot connect to postgresql+psycopg://lifecycle:db-pass%2F42@db.internal/lifecycle",
        "password 'db-pass/42' refused",  # the same password, decoded, as a driver may quote it
        "broker redis://:broker-pass-81@redis.internal:6379/0 and limiter limiter-pass-77",
        "an unconfigured one: amqp://guest:guest-pass-5@mq.internal//",
    ]
    for leak in leaks:
        handler.handle(logging.makeLogRecord({"name": "lifecycle.test", "levelno": logging.ERROR,
                                              "levelname": "ERROR", "msg": leak}))  # fmt: skip
    output = stream.getvalue()
    for secret in ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "db-pass", "broker-pass-81", "limiter-pass-77",
                   "guest-pass-5"):  # fmt: skip
        assert secret not in output, f"{secret!r} in {output}"
    assert (
        "secret whsec_***" in output and "postgresql+psycopg://lifecycle:***@db.internal/lifecycle" in output
    )
    assert "redis://:***@redis.internal:6379/0" in output and "amqp://guest:***@mq.internal//" in output


def test_uvicorn_lines_leave_out_their_terminal_colour_copy(settings):
    stream = io.StringIO()
    handler = make_handler(settings.model_copy(update={"log_format": "text"}), stream)
    record = logging.makeLogRecord({
        "name": "uvicorn.error", "levelno": logging.INFO, "levelname": "INFO",
        "msg": "Started server process [%d]", "args": (42,),
        "color_message": "Started server process [\x1b[36m%d\x1b[0m]",
    })  # fmt: skip
    handler.handle(record)
    assert stream.getvalue().strip().endswith("INFO uvicorn.error: Started server process [42]")


def test_gunicorn_lines_use_the_service_format(monkeypatch):
    from gunicorn.config import Config

    from lifecycle.observability.logs import gunicorn_logger_class

    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("SEVENTEENTRACK_API_KEY", API_KEY)
    from config.settings import get_settings

    get_settings.cache_clear()
    error_log = logging.getLogger("gunicorn.error")
    try:
        logger = gunicorn_logger_class()(Config())
        stream = io.StringIO()
        ours = [handler for handler in logger.error_log.handlers if getattr(handler, "_gunicorn", False)]
        for handler in ours:
            handler.setStream(stream)  # type: ignore[attr-defined]
        logger.info("Booting worker with key %s", API_KEY)
    finally:
        get_settings.cache_clear()
        for handler in [h for h in error_log.handlers if getattr(h, "_gunicorn", False)]:
            error_log.removeHandler(handler)  # gunicorn's loggers are process-wide
    line = json.loads(stream.getvalue())
    assert (line["logger"], line["level"]) == ("gunicorn.error", "INFO")
    assert line["msg"] == "Booting worker with key ***"
