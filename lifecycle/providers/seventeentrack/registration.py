"""17TRACK registrations: local checks first, then one `register` operation per number.

Every registration costs quota, so a (number, carrier) already registered here and not deleted is
never sent again, and obvious garbage is refused before any call (reference/17track.md §1, §2.1).
A batch (a CSV chunk, an API call) is decided here in Python on plain rows and stored as sets by
registration_rows, so its cost is a handful of statements however many numbers it holds.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from lifecycle.providers.seventeentrack import registration_rows as rows
from lifecycle.providers.seventeentrack.numbers import NUMBER_PATTERN, normalise
from lifecycle.providers.seventeentrack.registration_rows import Known, Queued
from lifecycle.shipments.models import UNKNOWN_CARRIER
from lifecycle.shipments.requests import Outcome, Registration, RegistrationPlan

PROVIDER = rows.PROVIDER
# States in which the number may be registered (again): never sent, refused, or deleted.
REGISTRABLE = ("deleted", "rejected")
NO_KEY = (
    "17TRACK is not configured: set SEVENTEENTRACK_API_KEY (and restart) to register numbers with "
    "17TRACK, or try everything against the simulator with `manage.py simulate`"
)


def check_number(raw: str) -> str:
    """The normalised number, or ValueError saying what is wrong with it."""
    number = normalise(raw)
    if not number:
        raise ValueError("empty tracking number")
    if not 5 <= len(number) <= 50:
        raise ValueError(f"{len(number)} characters; 17TRACK numbers have 5 to 50")
    if not NUMBER_PATTERN.match(number):
        bad = sorted({c for c in number if not (c.isascii() and (c.isalnum() or c == "-"))})
        raise ValueError(f"characters not allowed: {''.join(bad)!r} (letters, digits and '-' only)")
    return number


def register(session: Session, requests: Sequence[Registration]) -> list[Outcome]:
    """One outcome per request, in order; the queued ones are stored with their operations."""
    return plan(session, requests).store(session)


def plan(session: Session, requests: Sequence[Registration]) -> RegistrationPlan:
    """Decide now (one SELECT of the numbers' shipments), store later: the outcomes are final as
    long as nothing else registers these numbers in between (the unique index refuses that)."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    valid: dict[int, Registration] = {}
    for index, request in enumerate(requests):
        try:
            number = check_number(request.number)
        except ValueError as exc:
            outcomes[index] = Outcome(request.number, False, str(exc))
            continue
        cleaned = (number, request.carrier or None, request.lang or None, request.tag or None)
        if cleaned == (request.number, request.carrier, request.lang, request.tag):
            valid[index] = request  # already in its stored form (a CSV row usually is)
        else:
            valid[index] = Registration(*cleaned)
    existing = rows.existing(session, (r.number for r in valid.values()))
    queued: list[Queued] = []
    for index, request in valid.items():
        outcome, decided = _decide(existing, request)
        outcomes[index] = outcome
        if decided is not None:
            queued.append(decided)
    return RegistrationPlan.decided([o for o in outcomes if o is not None], lambda s: rows.save(s, queued))


def _decide(existing: dict[str, list[Known]], request: Registration) -> tuple[Outcome, Queued | None]:
    """Refuse a (number, carrier) live here, else queue it: again if deleted or rejected, else new.

    `existing` is updated in place, so a duplicate later in the same batch is refused like one
    registered before it."""
    carrier = request.carrier or UNKNOWN_CARRIER
    known_rows = existing.get(request.number)
    if not known_rows:  # the common case, a number not seen here: a new shipment
        known = Known(None, request.number, carrier, "pending", 1)
        existing[request.number] = [known]
        return _queued(request), Queued(known, request, again=False)
    live = [k for k in known_rows if k.tracking not in REGISTRABLE]
    clash = [k for k in live if not request.carrier or k.carrier in (carrier, UNKNOWN_CARRIER)]
    if clash:
        known = clash[0]
        where = f"carrier {known.carrier}" if known.carrier else "carrier being detected"
        return Outcome(request.number, False, f"already registered here ({where}, {known.tracking})"), None
    reusable = next((k for k in known_rows if k.carrier == carrier), None)
    if reusable is not None:
        # Registering a deleted number again is a new registration (and 17TRACK charges it again).
        reusable.generation += 1
        reusable.tracking = "pending"
        decided = Queued(reusable, request, again=True)
    else:
        known = Known(None, request.number, carrier, "pending", 1)
        known_rows.append(known)
        decided = Queued(known, request, again=False)
    return _queued(request), decided


def _queued(request: Registration) -> Outcome:
    note = "" if request.carrier else " (carrier auto-detected by 17TRACK)"
    return Outcome(request.number, True, "queued for registration" + note, request.carrier)
