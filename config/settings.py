"""Typed settings read from the environment (and `.env` when present).

Every variable has an embedded default, so a fresh checkout runs with no configuration:
SQLite under `var/` and a broker that needs no server (kombu's filesystem transport, made atomic in
`lifecycle/broker.py`). Every field is one row of the README's "Environment" table and one line of
`.env.example`; a test keeps the three in step.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
# The admin console's account rules: one check (below) for ADMIN_EMAIL / ADMIN_PASSWORD at start and
# for every account lifecycle.admin.accounts creates, so a pair Settings accepts is always creatable.
ADMIN_PASSWORD_MIN_LENGTH = 10
ADMIN_EMAIL_MAX_LENGTH = 254  # the admin_users.email column


def normalise_admin_email(email: str) -> str:
    return email.strip().lower()


def checked_admin_account(
    email: str, password: str, names: tuple[str, str] = ("the email", "the password")
) -> str:
    """The normalised email, or ValueError naming (by `names`) what is wrong with the pair."""
    email_name, password_name = names
    email = normalise_admin_email(email)
    if "@" not in email:
        raise ValueError(f"{email_name} {email!r} is not an email address")
    if len(email) > ADMIN_EMAIL_MAX_LENGTH:
        raise ValueError(f"{email_name} is {len(email)} characters long: at most {ADMIN_EMAIL_MAX_LENGTH}")
    if len(password) < ADMIN_PASSWORD_MIN_LENGTH:
        raise ValueError(f"{password_name} must have at least {ADMIN_PASSWORD_MIN_LENGTH} characters")
    return email


class Settings(BaseSettings):
    """The service's configuration: each field is read from the upper-case environment variable."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Embedded state (SQLite file, broker folder, beat schedule, limiter file) lives here.
    var_dir: Path = VAR_DIR
    # Empty means the embedded SQLite file under var_dir.
    database_url: str = ""
    broker_url: str = "filesystem://"
    # Shared rate-limiter backend: a redis:// URL, or empty for the file lock under var/.
    limiter_url: str = ""
    secret_key: SecretStr = SecretStr("dev-only-change-me")

    seventeentrack_api_key: SecretStr = SecretStr("")
    seventeentrack_api_url: str = "https://api.17track.net/track/v2.2"
    # free | basic | advanced | pro | flagship: checked at start against config/quota_rules/17track.toml.
    seventeentrack_plan: str = "free"
    # The plan year starts here (default: 1 January); the rule set names a file section in quota_rules.
    seventeentrack_plan_start: date | None = None
    seventeentrack_rules: str = "17track-official"
    seventeentrack_rate_per_second: int = Field(3, ge=1)
    seventeentrack_batch_size: int = Field(40, ge=1, le=40)
    seventeentrack_timeout_seconds: float = 10.0

    cargoai_api_key: SecretStr = SecretStr("")
    cargoai_api_url: str = "https://api.cargoai.co/solutions"
    # e.g. "push-pro" or "push-pro,pull-pro" (one plan per unit), names from quota_rules/cargoai.toml.
    cargoai_plan: str = ""
    cargoai_callback_auth: Literal["hmac", "bearer", "basic", "none"] = "hmac"
    cargoai_callback_token: SecretStr = SecretStr("")
    cargoai_callback_user: str = ""
    cargoai_callback_password: SecretStr = SecretStr("")
    # push: subscribe and receive callbacks; pull: poll GET /track within the monthly call budget.
    cargoai_mode: Literal["push", "pull"] = "push"
    cargoai_pull_calls_per_month: int = Field(10, ge=0)
    # Subscriptions last 3 weeks; renewing one is billed again, so it is the operator's choice.
    cargoai_renew_subscriptions: bool = False
    cargoai_rate_per_second: int = Field(5, ge=1)
    cargoai_plan_start: date | None = None
    cargoai_rules: str = ""
    # Calendar months of the free quota are cut in this zone (17TRACK: "reset on the 1st").
    account_timezone: str = "UTC"
    # Percent of the plan's quota; each crossing alerts once per plan period.
    budget_alert_thresholds: str = "80,95,100"
    alert_webhook_url: str = ""
    # At 100% of the plan, registrations are held unless overage is allowed.
    allow_overage: bool = False
    quota_rules_dir: Path = PROJECT_ROOT / "config" / "quota_rules"
    public_base_url: str = "http://127.0.0.1:8000"
    # Both set (or neither, checked at start): this admin is created at start if it does not exist yet.
    admin_email: str = ""
    admin_password: SecretStr | None = None

    webhook_max_bytes: int = 1024 * 1024
    inbox_batch_size: int = Field(500, ge=1, le=5000)
    # Rows still pending this long after arrival are re-dispatched by the sweeper.
    sweep_interval_seconds: float = 5.0
    sweep_pending_after_seconds: float = 3.0
    # An operation claimed but not finished within this time is considered abandoned.
    operation_lease_seconds: float = 120.0
    operation_max_attempts: int = 20
    # One flush task sends for at most this long, then re-queues itself: a worker slot is never
    # held for minutes by the 3 requests/s limit.
    flush_max_seconds: float = 20.0
    # A tracked shipment silent this long gets a (free) gettrackinfo: 17TRACK pushes every 3–12 h.
    sync_silent_hours: float = 24.0
    sync_interval_seconds: float = 900.0
    # Scheduled jobs (README "Scheduled jobs"): how often each runs, and what it acts on. Every job
    # works in batches, each its own transaction, and stops after cleanup_max_seconds until next time.
    cleanup_batch_size: int = Field(500, ge=1, le=10_000)
    cleanup_max_seconds: float = Field(300.0, gt=0)
    safety_net_interval_seconds: float = Field(3600.0, gt=0)
    # Delivered/returned/expired and still tracked this long after the event: stoptrack is queued.
    safety_net_after_hours: float = Field(24.0, ge=0)
    stale_interval_seconds: float = Field(86400.0, gt=0)
    stale_no_event_days: float = Field(20.0, gt=0)
    stale_not_found_days: float = Field(7.0, gt=0)
    # "report" lists stale shipments (every provider) in the run; "stop" also stops them: 17TRACK's
    # stoptrack or CargoAi's unsubscribe is queued, a polled AWB or a generic shipment stops at once.
    stale_action: Literal["report", "stop"] = "report"
    mirror_17track_interval_seconds: float = Field(86400.0, gt=0)
    # Warn this many days before 17TRACK deletes a stopped number (90 days without updates).
    mirror_17track_warn_days: float = Field(7.0, ge=0)
    retention_interval_seconds: float = Field(86400.0, gt=0)
    # Processed inbox bodies older than this are emptied; replay rebuilds only this window.
    inbox_retention_days: float = Field(90.0, gt=0)
    # Job runs, resolved job alerts and silent heartbeats older than this are deleted.
    job_history_retention_days: float = Field(90.0, gt=0)
    retry_interval_seconds: float = Field(600.0, gt=0)
    # Failed inbox rows and exhausted operations are retried this many times, backing off from
    # retry_backoff_minutes (doubling), then stay failed for an operator.
    retry_failed_limit: int = Field(3, ge=0)
    retry_backoff_minutes: float = Field(30.0, ge=0)
    reconcile_interval_seconds: float = Field(86400.0, gt=0)
    cargoai_renew_interval_seconds: float = Field(3600.0, gt=0)
    # Subscriptions ending within this many days (renewal off) are reported and alerted once.
    cargoai_ending_warn_days: float = Field(2.0, ge=0)
    heartbeat_interval_seconds: float = Field(30.0, gt=0)
    # /healthz warns when no worker has written a heartbeat for this long.
    worker_stale_after_seconds: float = Field(300.0, gt=0)
    # Outbound events (README "Outbound events"): endpoints are the operator's own systems, so
    # loopback and private addresses are allowed unless this is false.
    outbound_allow_private: bool = True
    outbound_timeout_seconds: float = Field(10.0, gt=0)
    # Retries back off from the base (doubling, capped, with jitter); the defaults span a day and a
    # margin (28 h at the least, about 32 h on average).
    outbound_max_attempts: int = Field(16, ge=1)
    outbound_retry_base_seconds: float = Field(30.0, ge=0)
    outbound_retry_max_seconds: float = Field(14400.0, ge=0)
    # An endpoint failing this many times in a row, for at least this long, is disabled with an alert.
    outbound_disable_after_failures: int = Field(10, ge=1)
    outbound_disable_after_hours: float = Field(24.0, ge=0)
    log_level: str = "INFO"
    # text: key=value lines for a terminal; json: one JSON object per line for a log shipper.
    log_format: Literal["text", "json"] = "text"
    # Prometheus multiprocess files, one folder per `serve`/`worker`/`run`; empty: var_dir/metrics.
    metrics_dir: str = ""
    # A worker machine without the web app serves its metrics on this port (0: off).
    metrics_port: int = Field(0, ge=0, le=65535)
    # gunicorn's access log (one line per request) costs some 50 µs of CPU a request: opt-in.
    access_log: bool = False
    # Threads per web process for the Flask routes (admin, API, health); `serve --threads` overrides it.
    # Webhooks need none: they are answered on the process's event loop (lifecycle/web/asgi.py).
    web_threads: int = Field(16, ge=1, le=512)

    @model_validator(mode="after")
    def _embedded_defaults(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'lifecycle.sqlite3'}"
        return self

    @model_validator(mode="after")
    def _first_admin_complete(self) -> Settings:
        """A half-set or wrong first admin stops the start with this message, not an error creating it."""
        self.admin_email = self.admin_email.strip()  # blank is unset, so the admin is made only when set
        password = self.admin_password.get_secret_value() if self.admin_password else ""
        if bool(self.admin_email) != bool(password):
            raise ValueError("ADMIN_EMAIL and ADMIN_PASSWORD go together: set both (first admin) or neither")
        if self.admin_email:
            checked_admin_account(self.admin_email, password, names=("ADMIN_EMAIL", "ADMIN_PASSWORD"))
        return self

    @property
    def metrics_root(self) -> Path:
        return Path(self.metrics_dir) if self.metrics_dir else self.var_dir / "metrics"

    @property
    def broker_dir(self) -> Path:
        """Where the embedded filesystem broker keeps its messages."""
        return self.var_dir / "broker"

    @property
    def alert_thresholds(self) -> list[int]:
        return sorted(int(part) for part in self.budget_alert_thresholds.split(",") if part.strip())

    @field_validator("seventeentrack_api_url", "cargoai_api_url", "public_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def is_embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem")

    @property
    def shared_limiter_url(self) -> str:
        """Redis URL for the provider rate limiter, falling back to the broker when it is Redis."""
        if self.limiter_url:
            return self.limiter_url
        return self.broker_url if self.broker_url.startswith("redis") else ""


@lru_cache
def get_settings() -> Settings:
    return Settings()
