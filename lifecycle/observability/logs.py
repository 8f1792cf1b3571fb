"""Structured logs on stdlib logging: key=value for a terminal, one JSON object a line for a shipper.

Every line carries the request id (web) or the Celery task id (workers), so one webhook or one task
can be followed through the logs. Nothing here logs a body: call sites log counts, ids and reasons.
As a second line of defence, the configured secrets (API keys, callback token and password, the
secret key, the admin password, the passwords inside DATABASE_URL, BROKER_URL and LIMITER_URL),
anything after "Bearer ", any URL's password and any outbound endpoint's `whsec_…` secret (those
live in the database, so they are recognised by their shape) are masked in every formatted line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from config.settings import Settings

HANDLER_NAME = "lifecycle"
MASK = "***"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_BEARER = re.compile(r"(?i)(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# Standard Webhooks secrets: `whsec_` and base64 (lifecycle/outbound/signing.py).
_WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")
# scheme://user:password@host — the password of any URL, configured here or not.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:)[^\s/@]+@")
# What every LogRecord has; anything else on a record came from `extra=` and is printed as a field
# (but uvicorn's `color_message`, the same message with terminal colours).
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "request_id",
    "task_id",
    "task",
    "color_message",
}


_ENVIRON: ContextVar[dict[str, Any] | None] = ContextVar("lifecycle_environ", default=None)


@contextmanager
def bound_environ(environ: dict[str, Any]) -> Iterator[None]:
    """Lines logged while a request is handled outside Flask (the webhook intake) carry its id."""
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


def request_id() -> str | None:
    """The current request's id: the caller's X-Request-ID if sane, else made on first use.

    Made lazily, when a line is logged: a webhook that logs nothing pays nothing for it.
    """
    environ = _ENVIRON.get()
    if environ is None:
        flask = sys.modules.get("flask")
        if flask is None or not flask.has_request_context():
            return None
        environ = flask.request.environ
    found = environ.get("lifecycle.request_id")
    if found is None:
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        found = incoming if _REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex[:16]
        environ["lifecycle.request_id"] = found
    return found


def task_ids() -> tuple[str | None, str | None]:
    """The running Celery task's (id, name), if this line is logged inside one."""
    if "celery" not in sys.modules:
        return None, None
    from celery._state import get_current_task

    task = get_current_task()
    if task is None or task.request.id is None:
        return None, None
    return task.request.id, task.name


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id()
        record.task_id, record.task = task_ids()
        return True


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The line's context and `extra=` fields, without empty ones."""
    found = {"request_id": getattr(record, "request_id", None), "task_id": getattr(record, "task_id", None),
             "task": getattr(record, "task", None)}  # fmt: skip
    found |= {key: value for key, value in vars(record).items() if key not in _STANDARD}
    return {key: value for key, value in found.items() if value is not None}


class _Masking(logging.Formatter):
    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def mask(self, line: str) -> str:
        for secret in self._secrets:
            line = line.replace(secret, MASK)
        line = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{MASK}@", line)
        line = _WEBHOOK_SECRET.sub(f"whsec_{MASK}", line)
        return _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", line)

    @staticmethod
    def timestamp(record: logging.LogRecord) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class KeyValueFormatter(_Masking):
    """`2026-11-30T18:50:01.123+00:00 INFO lifecycle.jobs: inbox drained task_id=… outcome=…`"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        for key, value in fields(record).items():
            text = str(value)
            line += f" {key}={json.dumps(text) if (not text or ' ' in text or '=' in text) else text}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.mask(line)


class JsonFormatter(_Masking):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **fields(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return self.mask(json.dumps(entry, default=str))


def secrets_of(settings: Settings) -> list[str]:
    values = [
        settings.seventeentrack_api_key,
        settings.cargoai_api_key,
        settings.cargoai_callback_token,
        settings.cargoai_callback_password,
        settings.secret_key,
        settings.admin_password,
    ]
    found = [value.get_secret_value() for value in values if value is not None]
    for url in (settings.database_url, settings.broker_url, settings.limiter_url):
        found += url_passwords(url)
    return found


def url_passwords(url: str) -> list[str]:
    """The password in a URL as written (percent-encoded) and decoded; none for a URL without one."""
    try:
        password = urlsplit(url).password
    except ValueError:  # not a URL this can read; the pattern still masks scheme://user:…@
        return []
    return [password, unquote(password)] if password else []


def make_handler(settings: Settings, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.name = HANDLER_NAME
    formatter = JsonFormatter if settings.log_format == "json" else KeyValueFormatter
    handler.setFormatter(formatter(secrets_of(settings)))
    handler.addFilter(ContextFilter())
    return handler


def configure(settings: Settings) -> None:
    """Our handler on the root logger, once per process (re-configured when settings change).

    Left alone when something else (pytest, an embedding application) already configured logging.
    """
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if handler.name == HANDLER_NAME]
    if ours or not root.handlers:
        for handler in ours:
            root.removeHandler(handler)
        root.addHandler(make_handler(settings))
    root.setLevel(settings.log_level.upper())


def gunicorn_logger_class() -> type:
    """gunicorn's logger with our formatter on its error and access lines (`--logger-class`)."""
    from gunicorn.glogging import Logger

    class StructuredGunicornLogger(Logger):
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            from config.settings import get_settings

            ours = make_handler(get_settings())
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(ours.formatter)
                    handler.addFilter(ContextFilter())

    return StructuredGunicornLogger


# gunicorn imports the class named on its command line: `lifecycle.observability.logs.GunicornLogger`.
def __getattr__(name: str) -> Any:
    if name == "GunicornLogger":
        return gunicorn_logger_class()
    raise AttributeError(name)
