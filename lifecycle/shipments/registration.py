"""Queueing registrations: fields checked here, numbers checked and queued by their provider.

Each provider's adapter refuses what it cannot track and queues what it can (one outbox operation
per number, never twice); this module only checks the fields every provider stores, and routes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy.orm import Session

from config.settings import Settings
from lifecycle.providers import registry
from lifecycle.shipments.requests import Outcome, Registration, RegistrationPlan

# The columns' limits (shipments.carrier is a 32-bit integer, tag 128 and lang 16 characters).
MAX_CARRIER = 2**31 - 1
MAX_TAG = 128
LANG_PATTERN = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


def field_problem(request: Registration) -> str | None:
    """What is wrong with a request's other fields, checked here so that every path (CLI, CSV, API)
    refuses them with a reason instead of the database refusing the whole batch."""
    if request.carrier is not None and not 0 <= request.carrier <= MAX_CARRIER:
        return f"carrier {request.carrier} is not a carrier number (0 to {MAX_CARRIER})"
    if request.tag is not None and len(request.tag) > MAX_TAG:
        return f"tag has {len(request.tag)} characters; at most {MAX_TAG}"
    if request.lang is not None and not LANG_PATTERN.match(request.lang):
        return f"lang {request.lang[:20]!r} is not a language code (like en or zh-Hans)"
    return None


def register(
    session: Session, requests: Sequence[Registration], settings: Settings | None = None
) -> list[Outcome]:
    """Queue registrations with the right provider; returns one outcome per request, in order."""
    return plan(session, requests, settings).store(session)


def plan(
    session: Session, requests: Sequence[Registration], settings: Settings | None = None
) -> RegistrationPlan:
    """Check and route now, let each provider decide; the plan's `store(session)` writes it all and
    returns one outcome per request, in order (see RegistrationPlan)."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    by_provider: dict[str, list[int]] = {}
    for index, request in enumerate(requests):
        problem = field_problem(request)
        if problem:
            outcomes[index] = Outcome(request.number, False, problem)
            continue
        by_provider.setdefault(registry.route(request), []).append(index)
    parts: list[tuple[list[int], RegistrationPlan]] = []
    for name, indexes in by_provider.items():
        chosen = [requests[i] for i in indexes]
        adapter = registry.find(name)
        if adapter is None:
            known = " or ".join(registry.names())
            for index, r in zip(indexes, chosen, strict=True):
                outcomes[index] = Outcome(r.number, False, f"unknown provider {name!r} ({known})")
        else:
            parts.append((indexes, adapter.plan_registrations(session, chosen, settings)))

    def store(session: Session) -> list[Outcome]:
        stored = list(outcomes)
        for indexes, part in parts:
            for index, outcome in zip(indexes, part.store(session), strict=True):
                stored[index] = outcome
        return [o for o in stored if o is not None]

    return RegistrationPlan(store)
