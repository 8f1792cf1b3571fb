"""Numbers in one normal form on every path (issue 10): registration, pushes, CargoAi, queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from lifecycle import migrate
from lifecycle.api.tokens import create_token
from lifecycle.db import make_engine
from lifecycle.extensions import db
from lifecycle.inbox import service as inbox
from lifecycle.providers import numbers
from lifecycle.providers.cargoai import awb
from lifecycle.providers.seventeentrack import webhook as st
from lifecycle.shipments.models import Shipment
from lifecycle.shipments.registration import Registration, register
from simulators.seventeentrack import pushes
from tests.conftest import PG_ADMIN
from tests.helpers import at, count, in_transit, post_push


@pytest.fixture
def headers(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session, session.begin():
        return {"Authorization": f"Bearer {create_token(session, 'tests')}"}


def _drain(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        inbox.drain(db.new_session, batch_size=50)


def test_a_lower_case_pushed_number_is_stored_in_normal_form_and_found(app, client, headers):
    post_push(client, in_transit(" rr123456789cn "))
    _drain(app)
    listed = client.get("/api/shipments", query_string={"q": "rr1234"}, headers=headers).json
    assert [s["number"] for s in listed["shipments"]] == ["RR123456789CN"]
    one = client.get("/api/shipments/17track/rr123456789cn", headers=headers)
    assert one.status_code == 200 and one.json["shipment"]["origin"] == "adopted"


def test_a_registered_number_pushed_in_lower_case_is_the_same_shipment(app, client):
    with app.app_context(), db.new_session() as session, session.begin():
        register(session, [Registration("rr123456789cn", 3011)])
    post_push(client, pushes.tracking_updated("rr123456789cn", 3011, "InTransit", None, at(1)))
    _drain(app)
    with app.app_context():
        assert count(Shipment) == 1
        with db.new_session() as session:
            only = session.scalars(select(Shipment)).one()
        assert (only.number, only.origin, only.status) == ("RR123456789CN", "registered", "in_transit")


def test_an_awb_typed_without_its_hyphen_is_found(app, client, headers):
    with app.app_context(), db.new_session() as session, session.begin():
        session.add(Shipment(provider="cargoai", number="000-12345675", carrier=0, tracking="tracking"))
    found = client.get("/api/shipments/cargoai/00012345675", headers=headers)
    assert found.status_code == 200 and found.json["shipment"]["number"] == "000-12345675"


@pytest.mark.parametrize(
    ("provider", "raw", "normal"),
    [
        ("17track", " rr123-x ", "RR123-X"),
        (None, " 000 12345675", "000-12345675"),
        ("cargoai", "00012345675", "000-12345675"),
        (None, "00012345676", "00012345676"),  # not a valid AWB: kept as a 17TRACK-style number
    ],
)
def test_one_normal_form(provider, raw, normal):
    assert numbers.normalise(provider, raw) == normal


def test_non_ascii_digits_are_not_an_awb():
    arabic_indic = "٠٠٠-١٢٣٤٥٦٧٥"
    assert not awb.looks_like_awb(arabic_indic)
    with pytest.raises(ValueError):
        awb.normalise(arabic_indic)


def test_push_parser_puts_the_number_in_normal_form():
    push = st.parse_push(pushes.encode(in_transit("lx123456789cn")))
    assert push.number == "LX123456789CN"


@pytest.fixture
def database_at_0006(backend: str, tmp_path, request) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.sqlite3'}"
        return
    request.getfixturevalue("postgres_url")  # skips (or fails in CI) without PostgreSQL
    name = f"lifecycle_migration_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG_ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migration_0007_puts_adopted_numbers_in_normal_form(database_at_0006):
    url = database_at_0006
    migrate.upgrade(url, "0006")
    engine = make_engine(url)
    rows = [
        ("17track", "rr1abc", 3011),
        ("17track", " lx2 ", 0),
        ("17track", "dup9", 1),
        ("17track", "DUP9", 1),
    ]
    rows.append(("cargoai", "000-12345675", 0))
    # Plain SQL with the columns of revision 0006: the model describes the newest schema.
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO shipments (provider, number, carrier, origin, status, tracking, retracked,"
                " carrier_changes, registration_generation, subscriptions, created_at, updated_at)"
                " VALUES (:p, :n, :c, 'adopted', 'pending', 'tracking', false, 0, 1, 0, :t, :t)"
            ),
            [{"p": p, "n": n, "c": c, "t": datetime(2026, 11, 1)} for p, n, c in rows],
        )
    migrate.upgrade(url)
    with Session(engine) as session:
        stored = sorted(session.scalars(select(Shipment.number)))
    engine.dispose()
    # "dup9" stays as it is: "DUP9" for the same carrier already exists (an operator merges them).
    assert stored == ["000-12345675", "DUP9", "LX2", "RR1ABC", "dup9"]
