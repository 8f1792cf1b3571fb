"""Reliability 7: shuffled delivery of every shipment's pushes ends in the state in-order delivery
ends in. 17TRACK retries and reorders; the newest event must win whatever the arrival order.

Each timeline is stored in the inbox in order under one set of numbers and, shuffled (with
duplicates), under other sets, then drained: every copy must end with the same status, sub-status,
latest event, tracking state and stoptrack, on both backends. Applied, doubled and lost are counted
per push (history rows per number and event time), so a double and a loss cannot cancel out.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.inbox.models import InboxEvent
from lifecycle.operations.models import CANCELLED, Operation
from lifecycle.shipments.models import Shipment, Transition
from simulators.seventeentrack import pushes
from tests.reliability_support import Figures

BASE = datetime(2026, 3, 1, tzinfo=UTC)
STOPPED = "TRACKING_STOPPED"
# Timelines as main/sub status, oldest first; STOPPED is 17TRACK's own stop notice, sent last.
TIMELINES = [
    ["InfoReceived/InfoReceived", "InTransit/InTransit_PickedUp", "OutForDelivery/OutForDelivery_Other",
     "Delivered/Delivered_Other"],
    ["InfoReceived/InfoReceived", "InTransit/InTransit_Departure", "Exception/Exception_Returning",
     "Exception/Exception_Returned"],
    ["InTransit/InTransit_PickedUp", "AvailableForPickup/AvailableForPickup_Other",
     "Delivered/Delivered_Other", STOPPED],
    ["InfoReceived/InfoReceived", "DeliveryFailure/DeliveryFailure_Other",
     "OutForDelivery/OutForDelivery_Other", "InTransit/InTransit_Arrival"],
    ["InfoReceived/InfoReceived", "InTransit/InTransit_PickedUp", "Expired/Expired_Other"],
    ["InfoReceived/InfoReceived", "InTransit/InTransit_PickedUp", "Mystery/Mystery_New",
     "InTransit/InTransit_Other"],
]  # fmt: skip
COPIES = 10  # numbers per timeline
SHUFFLES = 3


def event_key(number: str, payload: dict[str, Any]) -> tuple[str, datetime | None]:
    """What one distinct push leaves in the history: (number, event time); None for a stop notice."""
    if payload["event"] == pushes.EVENT_STOPPED:
        return number, None
    return number, datetime.fromisoformat(payload["data"]["track_info"]["latest_event"]["time_iso"])


def payloads(number: str, timeline: list[str], index: int) -> list[dict[str, Any]]:
    out = []
    for step, entry in enumerate(timeline):
        if entry == STOPPED:
            out.append(pushes.tracking_stopped(number, 3011))
            continue
        main, sub = entry.split("/")
        when = BASE + timedelta(hours=6 * step, minutes=index)
        out.append(pushes.tracking_updated(number, 3011, main, sub, when))
    return out


def deliver(prefix: str, timelines: list[list[str]], rng: random.Random | None) -> tuple[int, set[tuple]]:
    """Store every timeline's pushes under `prefix` numbers, as the webhook stores them: in order, or
    shuffled with duplicates. How many were stored, and the event key of each distinct push."""
    bodies, keys = [], set()
    for t, timeline in enumerate(timelines):
        for copy in range(COPIES):
            number = f"{prefix}{t}X{copy:03d}"
            items = payloads(number, timeline, copy)
            keys |= {event_key(number, item) for item in items}
            if rng is not None:
                items += [item for item in items if rng.random() < 0.2]  # providers deliver twice
                rng.shuffle(items)
            bodies += items
    with db.new_session() as session, session.begin():
        session.execute(
            insert(InboxEvent), [{"provider": "17track", "body": pushes.encode(b)} for b in bodies]
        )
    return len(bodies), keys


def applied_counts() -> Counter[tuple]:
    """History rows per (number, event time): each distinct push must leave exactly one."""
    with db.new_session() as session:
        rows = session.execute(
            select(Shipment.number, Transition.event_time).join(
                Shipment, Shipment.id == Transition.shipment_id
            )
        ).all()
    return Counter((number, when) for number, when in rows)


def final_states(prefix: str) -> dict[str, tuple]:
    """Each shipment's end state, keyed by its number without the run's prefix."""
    state = (Shipment.status, Shipment.sub_status, Shipment.last_event_at, Shipment.last_event_description)
    ours = Shipment.number.like(f"{prefix}%")
    with db.new_session() as session:
        rows = session.execute(
            select(Shipment.id, Shipment.number, *state, Shipment.tracking).where(ours)
        ).all()
        active = (Operation.kind == "stoptrack", Operation.status != CANCELLED)
        stopping = set(session.scalars(select(Operation.shipment_id).where(*active)))
    return {number.removeprefix(prefix): (*rest, id_ in stopping) for id_, number, *rest in rows}


def differences(timelines: list[list[str]]) -> tuple[list[str], dict[str, Any]]:
    """Deliver the timelines in order and shuffled, drain; what differs, and the figures."""
    sent, expected = deliver("ORD", timelines, None)
    for seed in range(SHUFFLES):
        stored, keys = deliver(f"SH{seed}", timelines, random.Random(seed))
        sent, expected = sent + stored, expected | keys
    report = inbox.drain(db.new_session, batch_size=50)
    in_order = final_states("ORD")
    shuffled = {seed: final_states(f"SH{seed}") for seed in range(SHUFFLES)}
    with db.new_session() as session:
        pending = session.scalars(select(InboxEvent.id).where(InboxEvent.status != "processed")).all()
    applied = applied_counts()
    differing = [
        f"{seed}:{key}: {got} vs in order {in_order.get(key)}"
        for seed, states in shuffled.items()
        for key, got in states.items()
        if got != in_order.get(key)
    ]
    shipments = len(timelines) * COPIES
    assert pending == [] and report.failed == 0
    assert len(in_order) == shipments and all(len(s) == shipments for s in shuffled.values())
    assert len(expected) == sum(len(timeline) for timeline in timelines) * COPIES * (1 + SHUFFLES)
    # Per push, not net: one push applied twice and another never cannot cancel out.
    doubled = {key: n for key, n in applied.items() if n > 1 or key not in expected}
    lost = sorted(expected - set(applied), key=str)
    figures = {
        "sent": sent,
        "distinct": len(expected),
        "applied": sum(applied.values()),
        "outcomes": report.outcomes,
    }
    return differing, figures | {"doubled": doubled, "lost": lost}


@pytest.mark.integration
def test_shuffled_delivery_ends_in_the_state_in_order_delivery_ends_in(app):
    with app.app_context():
        differing, figures = differences(TIMELINES)
    doubled, lost = figures["doubled"], figures["lost"]
    Figures(
        "out of order", figures["sent"], figures["sent"], figures["applied"],
        sum(n - 1 if n > 1 else n for n in doubled.values()), len(lost),
        {"distinct_pushes": figures["distinct"], "shipments_per_run": len(TIMELINES) * COPIES,
         "shuffled_runs": SHUFFLES, "differing": len(differing), "outcomes": figures["outcomes"]},
    ).show()  # fmt: skip
    assert doubled == {}, list(doubled.items())[:10]
    assert lost == [], lost[:10]
    assert figures["applied"] == figures["distinct"]
    assert differing == [], "\n".join(differing[:10])


@pytest.mark.parametrize(
    "timeline",
    [
        pytest.param(
            ["InTransit/InTransit_PickedUp", "Delivered/Delivered_Other", "Exception/Exception_Returning"],
            id="delivered-then-returning",
        ),
        pytest.param(
            ["InfoReceived/InfoReceived", "InTransit/InTransit_PickedUp", "Mystery/Mystery_New"],
            id="unknown-newest-status",
        ),
        pytest.param(
            ["InTransit/InTransit_PickedUp", "Delivered/Delivered_Other", "Mystery/Mystery_New"],
            id="delivered-then-unknown",
        ),
    ],
)
def test_endings_that_once_depended_on_arrival_order(app, timeline):
    """A return after a delivery withdraws the unsent auto-stop; a newest push with an unknown status
    leaves the newest known status in place whatever order the pushes came in."""
    with app.app_context():
        differing, figures = differences([timeline])
    assert figures["doubled"] == {} and figures["lost"] == [], (figures["doubled"], figures["lost"])
    assert differing == [], "\n".join(differing[:10])
