"""The simulator's in-memory 17TRACK account: options, parcels, quota, call log and rate window.

Everything here is shared between the HTTP threads and the progression/push threads, so it is
read and changed only under `SimState.lock`.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from simulators.seventeentrack import carriers, codes, scripts

TRACKING, STOPPED = "Tracking", "Stopped"


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class SimOptions:
    """Every keyword `SimulatorServer(api_key, **options)` accepts, with its default."""

    rate_per_second: int = 3
    quota_total: int = 10_000
    daily_limit: int = 10_000_000
    webhook_url: str | None = None
    # Background progression: every `step_seconds`, only while a webhook URL is set; None = manual.
    step_seconds: float | None = 5.0
    event_hours: float = 6.0  # simulated time between two events of a parcel
    clock_start: datetime | None = None  # simulated time of the first event; default: see new_parcel
    not_found_rate: float = 0.05
    exception_rate: float = 0.1
    customs_rate: float = 0.5
    auto_stop_steps: int | None = 2  # steps after Delivered/Returned before tracking stops itself
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    delay_seconds: float | tuple[float, float] = 0.0
    retry_seconds: tuple[float, ...] = (10.0, 30.0, 60.0)  # the reference's 10/30/60 min, in seconds
    push_timeout: float = 5.0
    # How long an injected "timeout" fault holds a call before carrying it out (faults.py).
    timeout_fault_seconds: float = 15.0
    undetectable_numbers: frozenset[str] = frozenset()
    undetectable_prefixes: tuple[str, ...] = ("ZZ",)
    seed: int = 0

    def __post_init__(self) -> None:
        # Callers pass lists; lookups per registered item want a set.
        self.undetectable_numbers = frozenset(self.undetectable_numbers)
        self.undetectable_prefixes = tuple(self.undetectable_prefixes)
        self.retry_seconds = tuple(self.retry_seconds)

    @property
    def mix(self) -> scripts.Mix:
        return scripts.Mix(self.not_found_rate, self.exception_rate, self.customs_rate)


@dataclass(slots=True, eq=False)
class Parcel:
    number: str
    carrier: int
    tracking: str = TRACKING
    retracked: bool = False
    script: str = "delivered"
    destination: str = "DE"
    register_time: datetime = field(default_factory=utcnow)
    start: datetime = field(default_factory=utcnow)  # the simulated clock's origin for its events
    origin: int = 2
    tag: str | None = None
    lang: str | None = None
    param: str | None = None
    final_carrier: int = 0
    info: dict[str, Any] = field(default_factory=dict)  # order_no, order_time, email, remark
    event_times: list[datetime] = field(default_factory=list)  # one per step reached, oldest first
    queried: bool = False  # the first carrier query happened (a NotFound answer counts)
    idle_steps: int = 0
    carrier_changes: int = 0
    # Renewed when a stoptrack, retrack or carrier change makes pushes already queued obsolete.
    epoch: int = 0
    stop_reason: str | None = None
    stop_time: datetime | None = None
    track_time: datetime | None = None
    push_time: datetime | None = None
    push_status: str = "NotPushed"
    push_status_code: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        return self.number, self.carrier

    @property
    def steps(self) -> tuple[scripts.Step, ...]:
        return scripts.SCRIPTS[self.script]

    @property
    def latest_step(self) -> scripts.Step | None:
        return self.steps[len(self.event_times) - 1] if self.event_times else None

    @property
    def finished(self) -> bool:
        return self.latest_step in scripts.FINAL_STEPS

    def stop(self, reason: str, now: datetime) -> None:
        self.tracking, self.stop_reason, self.stop_time = STOPPED, reason, now


class ParcelBook:
    """Registrations keyed by (number, carrier), as 17TRACK keys them.

    `book["RR1"]` is the number's first registration, `del book["RR1"]` drops all of them and
    iterating yields numbers: callers that think in numbers (the existing tests) keep working. A
    (number, carrier) tuple addresses one registration; `len()` and `values()` count registrations.
    """

    def __init__(self) -> None:
        self._by_number: dict[str, dict[int, Parcel]] = {}
        self._count = 0

    def add(self, parcel: Parcel) -> None:
        carriers = self._by_number.setdefault(parcel.number, {})
        self._count += parcel.carrier not in carriers
        carriers[parcel.carrier] = parcel

    def remove(self, parcel: Parcel) -> None:
        carriers = self._by_number.get(parcel.number, {})
        if carriers.pop(parcel.carrier, None) is not None:
            self._count -= 1
        if not carriers:
            self._by_number.pop(parcel.number, None)

    def rekey(self, parcel: Parcel, carrier: int) -> None:
        self.remove(parcel)
        parcel.carrier = carrier
        self.add(parcel)

    def matches(self, number: str, carrier: int | None = None) -> list[Parcel]:
        carriers = self._by_number.get(number, {})
        if carrier is None:
            return list(carriers.values())
        return [carriers[carrier]] if carrier in carriers else []

    def get(self, key: str | tuple[str, int]) -> Parcel | None:
        found = self.matches(key) if isinstance(key, str) else self.matches(*key)
        return found[0] if found else None

    def values(self) -> list[Parcel]:
        return [parcel for carriers in self._by_number.values() for parcel in carriers.values()]

    def __getitem__(self, key: str | tuple[str, int]) -> Parcel:
        parcel = self.get(key)
        if parcel is None:
            raise KeyError(key)
        return parcel

    def __delitem__(self, key: str | tuple[str, int]) -> None:
        found = self.matches(key) if isinstance(key, str) else self.matches(*key)
        if not found:
            raise KeyError(key)
        for parcel in found:
            self.remove(parcel)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str | tuple) and self.get(key) is not None  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._by_number))  # numbers, as the old number-keyed dict iterated

    def __len__(self) -> int:
        return self._count


@dataclass
class Quota:
    total: int
    daily_limit: int
    used: int = 0
    today_used: int = 0
    day: date = field(default_factory=lambda: utcnow().date())

    def charge(self, cost: int, now: datetime) -> None:
        """Spend `cost` units or refuse the item: -18019908 quota ran out, -18019907 daily limit."""
        if now.date() != self.day:
            self.day, self.today_used = now.date(), 0
        if cost <= 0:
            return
        if self.used + cost > self.total:
            raise codes.ItemError(codes.QUOTA_OUT)
        if self.today_used + cost > self.daily_limit:
            raise codes.ItemError(codes.DAILY_LIMIT)
        self.used += cost
        self.today_used += cost

    def as_json(self, now: datetime) -> dict[str, int]:
        self.charge(0, now)  # roll the day over before reporting today's use
        return {
            "quota_total": self.total,
            "quota_used": self.used,
            "quota_remain": self.total - self.used,
            "today_used": self.today_used,
            "max_track_daily": self.daily_limit,
            "free_email_quota": 300,
            "free_email_quotaused": 0,
        }


class SimState:
    def __init__(self, api_key: str, options: SimOptions | None = None, **overrides: Any) -> None:
        self.api_key = api_key
        self.options = options or SimOptions(**overrides)
        self.rate_per_second = self.options.rate_per_second
        self.webhook_url = self.options.webhook_url
        self.quota = Quota(self.options.quota_total, self.options.daily_limit)
        self.parcels = ParcelBook()
        self.calls: list[dict[str, Any]] = []
        self.pushes: list[dict[str, Any]] = []
        self.arrivals: deque[float] = deque()
        # Injected faults for the next calls, one each: HTTP statuses, "timeout", "reset" (faults.py).
        self.fail_next: list[int | str] = []
        self.lock = threading.Lock()
        self._epochs = itertools.count(1)

    # The account's limits, adjustable mid-test ("the operator buys quota").
    @property
    def quota_total(self) -> int:
        return self.quota.total

    @quota_total.setter
    def quota_total(self, value: int) -> None:
        self.quota.total = value

    @property
    def daily_limit(self) -> int:
        return self.quota.daily_limit

    @daily_limit.setter
    def daily_limit(self, value: int) -> None:
        self.quota.daily_limit = value

    def admit(self, now: float) -> bool:
        """Sliding one-second window per key; a refused (429) call does not take a slot."""
        while self.arrivals and self.arrivals[0] <= now - 1.0:
            self.arrivals.popleft()
        if len(self.arrivals) >= self.rate_per_second:
            return False
        self.arrivals.append(now)
        return True

    def over_rate(self, now: float) -> bool:
        return not self.admit(now)

    def new_parcel(self, number: str, carrier: int, now: datetime, tracking: str = TRACKING) -> Parcel:
        """A registration with its scripted path drawn; the caller adds it to the book."""
        rng = scripts.parcel_random(self.options.seed, number, carrier)
        script = scripts.choose_script(rng, self.options.mix)
        destination = rng.choice(carriers.DESTINATIONS)
        # By default the whole path lies in the past at registration time: each step then reveals
        # an event the carrier already has, and no event time is ahead of the wall clock.
        lead = timedelta(hours=self.options.event_hours * len(scripts.SCRIPTS[script]))
        start = self.options.clock_start or (now - lead).replace(microsecond=0)
        parcel = Parcel(
            number, carrier, tracking, script=script, destination=destination, register_time=now, start=start
        )
        self.obsolete_queued_pushes(parcel)
        return parcel

    def add_parcel(self, number: str, carrier: int, tracking: str = TRACKING) -> Parcel:
        """A registration made elsewhere (dashboard, another tool): no validation, no quota."""
        parcel = self.new_parcel(number, carrier, utcnow(), tracking)
        self.parcels.add(parcel)
        return parcel

    def obsolete_queued_pushes(self, parcel: Parcel) -> None:
        """Pushes queued for the parcel so far will not go out (stoptrack, retrack, new carrier).

        Epochs come from one counter, so a number deleted and registered again does not receive
        pushes queued for its earlier registration either.
        """
        parcel.epoch = next(self._epochs)

    def deliverable(self, key: tuple[str, int], epoch: int) -> bool:
        """Whether a queued push still goes out: not to deleted parcels, nor after a stoptrack."""
        parcel = self.parcels.get(key)
        return parcel is not None and parcel.epoch == epoch

    def record_push(self, record: dict[str, Any]) -> None:
        self.pushes.append(record)
        parcel = self.parcels.get((record["number"], record["carrier"]))
        if parcel is not None:
            parcel.push_time = datetime.fromtimestamp(record["at"], UTC)
            parcel.push_status = "Success" if record["status"] == 200 else "Failure"
            parcel.push_status_code = record["status"]
