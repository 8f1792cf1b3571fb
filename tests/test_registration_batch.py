"""A chunk of 17TRACK registrations decided as a set: duplicates within it, deleted and rejected
numbers registered again, and numbers already registered get the outcomes they always got."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from sqlalchemy import select, update

from lifecycle.extensions import db
from lifecycle.operations.models import Operation
from lifecycle.shipments import csv_import
from lifecycle.shipments.models import Shipment
from lifecycle.shipments.registration import Registration, register

A, B, C, D, E, F, G = (f"RR00000000{i}CN" for i in range(1, 8))
HERE = "already registered here"


def queue(app, requests: list[Registration]):  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session, session.begin():
        return [(o.number, o.ok, o.message, o.carrier) for o in register(session, requests)]


def set_shipment(app, number: str, carrier: int, **values) -> None:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session, session.begin():
        session.execute(
            update(Shipment).where(Shipment.number == number, Shipment.carrier == carrier).values(**values)
        )


def seed(app) -> None:  # type: ignore[no-untyped-def]
    queue(app, [Registration(A, 3011), Registration(B, 3011, "de", "old"), Registration(C)])
    queue(app, [Registration(D, 3011), Registration(E, 3011)])
    gone = datetime(2026, 11, 1, tzinfo=UTC)
    set_shipment(
        app, B, 3011, tracking="deleted", deleted_at=gone, stopped_at=gone, error_code=-18019902,
        last_error="gone", retracked=True, carrier_changes=2, origin="adopted",
    )  # fmt: skip
    set_shipment(app, C, 0, tracking="rejected", error_code=-18019901)
    set_shipment(app, D, 3011, tracking="deleted", registration_generation=2)
    set_shipment(app, E, 3011, tracking="tracking")


CHUNK = [
    Registration(A, 3011),
    Registration(A),
    Registration(A, 21051),
    Registration(A, 21051),
    Registration(B, 3011, "en", "new"),
    Registration(B, 3011),
    Registration(B),
    Registration(C),
    Registration(C, 3011),
    Registration(D, 190271),
    Registration(D, 3011),
    Registration(E, 21051),
    Registration(E),
    Registration(F),
    Registration(F, 3011),
    Registration("rr 1"),
    Registration(G, -5),
    Registration(" rr000000007cn ", 3011, tag="t"),
    Registration(G, 3011),
]

EXPECTED = [
    (A, False, f"{HERE} (carrier 3011, pending)", None),
    (A, False, f"{HERE} (carrier 3011, pending)", None),
    (A, True, "queued for registration", 21051),
    (A, False, f"{HERE} (carrier 21051, pending)", None),
    (B, True, "queued for registration", 3011),
    (B, False, f"{HERE} (carrier 3011, pending)", None),
    (B, False, f"{HERE} (carrier 3011, pending)", None),
    (C, True, "queued for registration (carrier auto-detected by 17TRACK)", None),
    (C, False, f"{HERE} (carrier being detected, pending)", None),
    (D, True, "queued for registration", 190271),
    (D, True, "queued for registration", 3011),
    (E, True, "queued for registration", 21051),
    (E, False, f"{HERE} (carrier 3011, tracking)", None),
    (F, True, "queued for registration (carrier auto-detected by 17TRACK)", None),
    (F, False, f"{HERE} (carrier being detected, pending)", None),
    ("rr 1", False, "4 characters; 17TRACK numbers have 5 to 50", None),
    (G, False, "carrier -5 is not a carrier number (0 to 2147483647)", None),
    (G, True, "queued for registration", 3011),
    (G, False, f"{HERE} (carrier 3011, pending)", None),
]

# Seeded: generation 1 of A, B, C, D, E; then this chunk's (number, carrier, generation).
EXPECTED_KEYS = {
    f"17track:register:{key}"
    for key in [
        *(f"{n}:{c}:1" for n, c in ((A, 3011), (B, 3011), (C, 0), (D, 3011), (E, 3011))),
        f"{A}:21051:1", f"{B}:3011:2", f"{C}:0:2", f"{D}:190271:1", f"{D}:3011:3",
        f"{E}:21051:1", f"{F}:0:1", f"{G}:3011:1",
    ]
}  # fmt: skip


def test_a_chunk_with_duplicates_and_registrations_again_gets_the_usual_outcomes(app):
    seed(app)
    assert queue(app, CHUNK) == EXPECTED
    with app.app_context(), db.new_session() as session:
        operations = session.execute(select(Operation.idempotency_key, Operation.payload)).all()
        assert {key for key, _ in operations} == EXPECTED_KEYS
        assert dict(operations)[f"17track:register:{B}:3011:2"] == {"tag": "new", "lang": "en"}
        again = session.scalars(select(Shipment).where(Shipment.number == B)).one()
        assert (again.tracking, again.origin, again.registration_generation) == ("pending", "registered", 2)
        assert (again.tag, again.lang, again.error_code, again.last_error) == ("new", "en", None, None)
        assert (again.deleted_at, again.stopped_at, again.retracked, again.carrier_changes) == (
            None, None, False, 0,
        )  # fmt: skip
        rejected = session.scalars(select(Shipment).where(Shipment.number == C)).one()
        assert (rejected.tracking, rejected.registration_generation) == ("pending", 2)
        assert rejected.error_code is None
        assert session.query(Shipment).count() == 10  # five seeded, five new


def test_duplicates_across_chunk_boundaries_are_refused_like_those_within_one(app, monkeypatch):
    monkeypatch.setattr(csv_import, "CHUNK", 2)
    text = f"number,carrier\n{A},3011\n{B},3011\n{A},3011\n{A},\n{B},21051\n{B},21051\n{C},\n"
    problems: list[tuple[int, str, str]] = []
    with app.app_context():
        report = csv_import.import_csv(io.StringIO(text), db.new_session, lambda *p: problems.append(p))
    assert (report.rows, report.queued, report.refused) == (7, 4, 3)
    assert problems == [
        (4, A, f"{HERE} (carrier 3011, pending)"),
        (5, A, f"{HERE} (carrier 3011, pending)"),
        (7, B, f"{HERE} (carrier 21051, pending)"),
    ]


def test_operations_follow_the_chunk_order_and_point_at_their_shipments(app):
    seed(app)
    queue(app, CHUNK)
    with app.app_context(), db.new_session() as session:
        rows = session.execute(
            select(Operation.idempotency_key, Operation.payload, Operation.status, Shipment)
            .join(Shipment, Shipment.id == Operation.shipment_id)
            .order_by(Operation.id)
        ).all()
    # The chunk's operations come after the seeded ones, in the order the chunk asked for them.
    chunk_keys = [key.removeprefix("17track:register:") for key, *_ in rows[5:]]
    assert chunk_keys == [
        f"{A}:21051:1", f"{B}:3011:2", f"{C}:0:2", f"{D}:190271:1", f"{D}:3011:3", f"{E}:21051:1",
        f"{F}:0:1", f"{G}:3011:1",
    ]  # fmt: skip
    for key, payload, status, shipment in rows[5:]:  # each registers its shipment as it is now
        assert (
            key == f"17track:register:{shipment.number}:{shipment.carrier}:{shipment.registration_generation}"
        )
        assert payload == {"tag": shipment.tag, "lang": shipment.lang}
        assert status == "pending"
    new = next(shipment for key, *_, shipment in rows if shipment.number == G)
    assert (new.provider, new.status, new.tracking, new.origin) == (
        "17track",
        "pending",
        "pending",
        "registered",
    )
    assert (new.tag, new.cost_units, new.subscriptions, new.retracked) == ("t", 0, 0, False)
    assert new.created_at == new.updated_at is not None
