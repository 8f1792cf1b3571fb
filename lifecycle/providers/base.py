"""The one interface every provider adapter implements, and the canonical types the core works in.

The core (inbox, shipments, operations, accounting) knows providers only through this module and
`registry`: a webhook body becomes `CanonicalEvent`s, a delivered shipment asks its adapter how to
stop it, a due operation is sent by the adapter's sender. Everything a provider's API or payloads
say lives in `providers/<name>/`; adding a provider is one package plus one line in the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from config.settings import Settings
    from lifecycle.accounting.rules import BillableEvent
    from lifecycle.shipments.requests import Outcome, Registration, RegistrationPlan
    from lifecycle.shipments.rows import ShipmentRow

# What a canonical event does to its shipment.
UPDATE = "update"  # a tracking event: may move the status (invariant 3)
STOPPED = "stopped"  # the provider stopped tracking the number on its own
UNKNOWN = "unknown"  # an event type this service does not know: stored and reported, never applied


class BodyError(ValueError):
    """The body is not one this provider's adapter can apply (shape, types, values)."""


class ProviderError(Exception):
    """A provider call that produced no per-item answer (network, HTTP status, error envelope)."""

    def __init__(
        self, message: str, *, transient: bool, code: int | None = None, answer_lost: bool = False
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code
        # The request may have reached the provider and been carried out; only its answer is missing
        # (read timeout, connection dropped after sending). Registrations are charged even so.
        self.answer_lost = answer_lost


@dataclass(frozen=True)
class CanonicalEvent:
    """One tracking event in the service's own vocabulary, whatever provider reported it."""

    number: str
    carrier: int
    kind: str = UPDATE
    status: str | None = None  # one of lifecycle.status.STATUSES, or None when not known
    sub_status: str | None = None
    event_time: datetime | None = None
    description: str | None = None
    # Identifies the event within its shipment: a redelivered or re-published event is applied once.
    dedupe_key: str = ""
    carrier_name: str | None = None
    tag: str | None = None


@dataclass(frozen=True)
class ParsedBody:
    """A webhook body as canonical events, oldest first.

    `history`: the body repeats what was reported before (CargoAi sends the whole history), so the
    row's outcome is "applied" when anything in it was new, "duplicate" when nothing was.
    """

    events: tuple[CanonicalEvent, ...]
    history: bool = False


@dataclass(frozen=True)
class Refusal:
    """Why a webhook request is refused: the HTTP status, a stable error name, a message."""

    status: int
    error: str
    message: str


@dataclass(frozen=True)
class OperationKind:
    """An outbox operation kind a provider supports, with how many go in one call."""

    name: str
    batch_size: int = 1


@dataclass
class SendContext:
    """What a sender needs from the running service, built by the worker for each flush."""

    session_factory: Callable[[], Session]
    settings: Settings
    client: Callable[[], Any]  # the provider's API client (built once per app)
    account: Any = None  # lifecycle.accounting.ledger.Account | None


# A sender whose next call would wait longer than this for the shared limiter stops and asks to be
# run again a little before the slot frees, instead of holding a worker process asleep (the inbox
# drain needs it); the small lead absorbs the task's dispatch, so calls still go out back to back.
YIELD_AFTER_SECONDS = 0.25
RESUME_LEAD_SECONDS = 0.1


def calls_now(client: Any, report: SendReport) -> int:
    """How many calls to make at once now: the limiter's free slots, or 1 when a slot frees within
    YIELD_AFTER_SECONDS (that call waits for it); 0, with `more` and `retry_after` set on the
    report, when the next call would wait longer."""
    slots, wait = client.free()
    if slots or wait <= YIELD_AFTER_SECONDS:
        return max(slots, 1)
    report.more = True
    report.retry_after = max(wait - RESUME_LEAD_SECONDS, 0.05)
    return 0


class Sender(Protocol):
    def flush(self, max_seconds: float, should_stop: Callable[[], bool] | None = None) -> SendReport:
        """Send due operations for at most `max_seconds`; between calls, stop (with `more`) once
        `should_stop()` says so (the send lock was lost)."""
        ...


@dataclass
class SendReport:
    calls: int = 0
    done: int = 0
    failed: int = 0
    retried: int = 0
    held: int = 0
    pulled: int = 0  # answers written to the inbox, for the inbox workers to apply
    more: bool = False  # work was left when time ran out
    # Stopped rather than sleep until the provider's rate limit frees a slot: go on in this long.
    retry_after: float | None = None
    paused: dict[str, Any] = field(default_factory=dict)


class Provider(Protocol):
    """A provider adapter (one module-level instance per provider, listed in registry.py)."""

    name: str  # stored in shipments.provider, inbox_events.provider, operations.provider
    title: str  # how people write it
    kinds: Sequence[OperationKind]
    # The operation that stops tracking a delivered shipment, when stopping needs a call.
    stop_kind: str | None
    # The error name answered (400) for a body that is JSON but not this provider's event.
    not_an_event: str

    def verify(self, raw: bytes, headers: Mapping[str, str], settings: Settings) -> Refusal | None:
        """None when the request is authentic; fail closed when a secret is missing."""

    def check_envelope(self, payload: Any) -> None:
        """Raise BodyError unless the decoded JSON has this provider's outer shape."""

    def parse(self, raw: bytes) -> ParsedBody:
        """The body's canonical events; BodyError for anything it cannot apply."""

    def normalise(self, raw: str) -> str:
        """The stored form of a number for this provider."""

    def claims(self, raw: str) -> bool:
        """Whether a number with no provider named should go to this one (e.g. AWB-shaped)."""

    def register(
        self, session: Session, requests: Sequence[Registration], settings: Settings | None
    ) -> list[Outcome]:
        """Queue registrations after local checks; one outcome per request, in order."""

    def plan_registrations(
        self, session: Session, requests: Sequence[Registration], settings: Settings | None
    ) -> RegistrationPlan:
        """What `register` would do, decided now and stored by the plan's `store(session)`, perhaps
        in a later transaction (a CSV import decides its next chunk while one is being stored)."""

    def adopted(self, event: CanonicalEvent, now: datetime) -> dict[str, Any]:
        """Extra column values for a shipment first heard of through a webhook."""

    def stop_row(self, shipment: ShipmentRow) -> dict[str, Any] | None:
        """The outbox row that stops a delivered shipment, or None when it stopped it itself."""

    def update_cycle(
        self, shipment: ShipmentRow, key: str, tracked: bool, received_at: datetime
    ) -> BillableEvent | None:
        """The billable event an applied update causes under per-cycle pricing, if any."""

    def jobs(self) -> dict[str, Callable[..., None]]:
        """The provider's own scheduled jobs by name, each taking a cleanup JobContext."""

    def client(self, settings: Settings) -> Any:
        """The provider's API client, behind the shared limiter (lifecycle/ratelimit.py)."""

    def sender(self, context: SendContext) -> Sender | None:
        """What sends this provider's due operations (None: nothing to send, e.g. unconfigured)."""
