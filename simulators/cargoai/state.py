"""The simulated CargoAi account: options, shipments, subscriptions, the simulated clock and logs.

Shared between the HTTP threads, the ticker and the callback thread, so it is read and changed
only under `CargoAiState.lock`. Nothing here does I/O.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from simulators.cargoai.paths import Mix, Shipment, new_shipment

CALLBACK_AUTHS = ("hmac", "bearer", "basic", "none")


@dataclass
class CargoAiOptions:
    """Every keyword `CargoAiSimulatorServer(api_key, **options)` accepts, with its default."""

    step_seconds: float | None = 5.0  # background ticker period; None = advance by hand only
    step_hours: float = 6.0  # simulated time one step moves the clock
    # The simulated clock's start; by default 30 days ago, so event dates stay in the past for the
    # first ~120 steps at 6 h, as real events would.
    clock_start: datetime | None = None
    subscription_days: float = 21.0  # "remains active for 3 weeks" (awb.md §1.3)
    interline_rate: float = 0.2
    rebook_rate: float = 0.2
    foh_rate: float = 0.3
    undated_bkd_rate: float = 0.5
    limited_prefixes: frozenset[str] = frozenset()  # airlines "not fully supported"
    accept_unhyphenated: bool = False  # also take "PPP SSSSSSSC" written as 11 bare digits
    callback_auth: str = "hmac"
    bearer_token: str | None = None
    basic_user: str | None = None
    basic_password: str | None = None
    duplicate_rate: float = 0.0
    delay_seconds: float | tuple[float, float] = 0.0
    latency_seconds: float = 0.0  # added to every API answer (the real pull averages 10 s)
    # How long an injected "timeout" fault holds a call before carrying it out (faults.py).
    timeout_fault_seconds: float = 45.0
    callback_timeout: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.limited_prefixes = frozenset(self.limited_prefixes)
        if self.callback_auth not in CALLBACK_AUTHS:
            raise ValueError(f"callback_auth must be one of {CALLBACK_AUTHS}")
        if self.callback_auth == "bearer" and not self.bearer_token:
            raise ValueError("callback_auth='bearer' needs bearer_token")
        if self.callback_auth == "basic" and (self.basic_user is None or self.basic_password is None):
            raise ValueError("callback_auth='basic' needs basic_user and basic_password")

    @property
    def mix(self) -> Mix:
        return Mix(self.interline_rate, self.rebook_rate, self.foh_rate, self.undated_bkd_rate)


@dataclass
class Subscription:
    id: int
    awb: str
    url: str | None
    emails: list[str]
    airline_code: str | None
    created: datetime  # simulated time
    expires: datetime
    refreshes: int = 0  # repeat subscriptions that renewed this one (each billed)
    active: bool = True
    ended: str | None = None  # "unsubscribed" | "expired"
    sent: int = 0  # how many of the shipment's events this target has been sent

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        return data | {"created": self.created.isoformat(), "expires": self.expires.isoformat()}


@dataclass(frozen=True)
class Outgoing:
    """One callback, its body fixed when the events appeared (awb.md §1.4 payload)."""

    subscription: int
    awb: str
    url: str
    body: bytes
    new_codes: tuple[str, ...]


@dataclass
class CargoAiState:
    api_key: str
    options: CargoAiOptions = field(default_factory=CargoAiOptions)

    def __post_init__(self) -> None:
        start = self.options.clock_start or datetime.now(UTC) - timedelta(days=30)
        self.clock = start.astimezone(UTC).replace(microsecond=0)
        self.shipments: dict[str, Shipment] = {}
        self.subscriptions: list[Subscription] = []
        self.calls: list[dict[str, Any]] = []
        self.callbacks: list[dict[str, Any]] = []
        # Injected faults: the next API calls answer with these HTTP statuses, one each.
        self.fail_next: list[int | str] = []  # HTTP statuses, "timeout", "reset" (faults.py)
        self.lock = threading.Lock()
        self._ids = itertools.count(1)

    @property
    def step(self) -> timedelta:
        return timedelta(hours=self.options.step_hours)

    def shipment(self, awb: str) -> Shipment:
        """The AWB's shipment, created on first sight: CargoAi tracks any AWB the airline knows."""
        if awb not in self.shipments:
            self.shipments[awb] = new_shipment(
                awb, self.options.seed, self.options.mix, self.clock, self.step
            )
        return self.shipments[awb]

    def active(self, awb: str) -> list[Subscription]:
        return [s for s in self.subscriptions if s.active and s.awb == awb]

    def subscribe(self, awb: str, url: str | None, emails: list[str], airline_code: str | None) -> None:
        """Create or renew the (AWB, url) subscription; either way it runs 3 weeks from now."""
        self.shipment(awb)
        expires = self.clock + timedelta(days=self.options.subscription_days)
        for sub in self.active(awb):
            if sub.url == url:
                sub.expires, sub.refreshes = expires, sub.refreshes + 1
                sub.emails += [e for e in emails if e not in sub.emails]
                sub.airline_code = airline_code or sub.airline_code
                return
        sub = Subscription(next(self._ids), awb, url, list(emails), airline_code, self.clock, expires)
        self.subscriptions.append(sub)

    def unsubscribe(self, awb: str, url: str | None, emails: list[str]) -> int:
        """Drop the named targets (all of them when none is named); returns subscriptions touched.

        A subscription ends when it has no url and no email left.
        """
        everything, touched = url is None and not emails, 0
        for sub in self.active(awb):
            drop_url = sub.url is not None and (everything or sub.url == url)
            dropped = [e for e in sub.emails if everything or e in emails]
            if not drop_url and not dropped:
                continue
            touched += 1
            sub.emails = [e for e in sub.emails if e not in dropped]
            if drop_url and sub.emails:
                sub.url = None  # it lives on for its emails
            elif not sub.emails and (drop_url or sub.url is None):
                sub.active, sub.ended = False, "unsubscribed"
        return touched

    def deliverable(self, outgoing: Outgoing) -> bool:
        """Whether a queued callback still goes out: not once its target was unsubscribed.

        Expiry does not cancel it: it was made before the expiry in simulated time, and only the
        wall-clock delivery lags behind the faster simulated clock.
        """
        sub = next((s for s in self.subscriptions if s.id == outgoing.subscription), None)
        return sub is not None and sub.ended != "unsubscribed" and sub.url == outgoing.url

    def advance(self, awbs: set[str] | None = None) -> list[Outgoing]:
        """One step: move the clock, expire subscriptions, reveal an event per shipment, and
        return the callbacks due. The clock moves even when only some AWBs are advanced."""
        self.clock += self.step
        for sub in self.subscriptions:
            if sub.active and sub.expires <= self.clock:
                sub.active, sub.ended = False, "expired"
        outgoing: list[Outgoing] = []
        for awb, shipment in self.shipments.items():
            if awbs is not None and awb not in awbs:
                continue
            shipment.reveal(self.clock)
            outgoing += [
                self._callback(sub, shipment) for sub in self.active(awb) if self._due(sub, shipment)
            ]
        return outgoing

    @staticmethod
    def _due(sub: Subscription, shipment: Shipment) -> bool:
        # "updates are sent only when new events are tracked" - new to this subscription, so a
        # fresh one is first sent the whole history on the next step.
        return sub.url is not None and sub.sent < len(shipment.events)

    @staticmethod
    def _callback(sub: Subscription, shipment: Shipment) -> Outgoing:
        events = list(shipment.events)
        old, new = events[: sub.sent], events[sub.sent :]
        sub.sent = len(events)
        head = {"awb": shipment.awb, "origin": shipment.origin, "destination": shipment.destination}
        payload = head | {"oldEvents": old, "newEvents": new, "events": events}
        body = json.dumps(payload, separators=(",", ":")).encode()
        return Outgoing(sub.id, sub.awb, str(sub.url), body, tuple(e["code"] for e in new))

    def billable(self) -> dict[str, int]:
        """What CargoAi bills: every successful subscribe (repeats too) and every pull (awb.md §1.5)."""
        billed = [c["endpoint"] for c in self.calls if c["billable"]]
        return {"subscriptions": billed.count("subscribe"), "pull_calls": billed.count("track")}
