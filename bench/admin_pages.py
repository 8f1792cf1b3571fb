"""The admin console's pages at 10,000 and at 1,000,000 shipments (PostgreSQL), side by side.

    .venv/bin/python bench/admin_pages.py [--smoke] [--requests 60]

The shipments table is filled with SQL (`INSERT ... SELECT generate_series`), then each page is
rendered through the Flask app in-process by a signed-in test client (the HTTP server is not what is
measured here): the shipments page (first page, page 1,000 by cursor, a filtered page sorted by last
event, a tag search) and the overview. Each page is requested --requests times after a warm-up; the
p95 is printed for both sizes with the ratio 1,000,000 / 10,000. Targets: p95 < 100 ms, ratio <= 1.5.

The overview's shipment counts are a cached aggregate (admin.overview.Aggregates, 30 s): the
measured loads run inside one TTL, as most loads do; the cost of one recount is printed apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import psycopg
from _harness import BROKER_URL, Harness, plain_url

from config.settings import Settings
from lifecycle import create_app
from lifecycle.admin import accounts, overview, shipment_list
from lifecycle.extensions import db
from lifecycle.shipments.models import Shipment

SIZES = (10_000, 1_000_000)
TARGET_MS = 100
RATIO_TARGET = 1.5
STATUSES = ("in_transit", "delivered", "pending", "not_found", "out_for_delivery", "exception")
FILL = """
INSERT INTO shipments (provider, number, carrier, status, sub_status, tracking, origin, tag, retracked,
    carrier_changes, registration_generation, subscriptions, cost_units, cost_amount, cost_currency,
    registered_at, last_event_at, last_seen_at, last_event_description, last_error, created_at, updated_at)
SELECT '17track', 'RR' || lpad(i::text, 9, '0') || 'CN', 3011,
    (ARRAY['in_transit','delivered','pending','not_found','out_for_delivery','exception'])[1 + i %% 6],
    NULL, CASE WHEN i %% 6 = 1 THEN 'stopped' ELSE 'tracking' END, 'registered',
    'order-' || (i %% 100), false, 0, 1, 0, 1 + i %% 3, 0, 'CNY',
    now() - (i || ' minutes')::interval,
    CASE WHEN i %% 10 = 0 THEN NULL ELSE now() - ((i %% 50000) || ' minutes')::interval END,
    now() - ((i %% 50000) || ' minutes')::interval,
    'Arrived at facility ' || i, CASE WHEN i %% 100 = 0 THEN 'carrier said no' END, now(), now()
FROM generate_series(%(first)s::int, %(last)s::int) AS i
"""


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] * 1000


def cursor_at(app, sort: str, position: int) -> str:  # type: ignore[no-untyped-def]
    """The cursor after `position` rows in this sort order (found once with OFFSET, not measured)."""
    column = shipment_list.SORTS[sort]
    with app.app_context(), db.new_session() as session:
        order = (shipment_list._desc(column), Shipment.id.desc())
        row = session.scalars(Shipment.__table__.select().with_only_columns(Shipment.id)
                              .order_by(*order).offset(position - 1).limit(1)).one()  # fmt: skip
        return shipment_list._encode(column, session.get(Shipment, row))


def pages(app, size: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    page = min(1000, size // shipment_list.PAGE_SIZE - 1)
    return {
        "shipments, first page": "/admin/shipments",
        f"shipments, page {page} by cursor": "/admin/shipments?after="
        + cursor_at(app, "recent", page * shipment_list.PAGE_SIZE),
        "shipments, filtered (delivered, by last event)": "/admin/shipments?status=delivered&sort=last_event",
        "shipments, tag search": "/admin/shipments?tag=order-7",
        "shipments, number prefix": "/admin/shipments?q=RR00000123",
        "overview": "/admin/",
    }


def measure(client, path: str, requests: int) -> list[float]:  # type: ignore[no-untyped-def]
    for _ in range(3):
        assert client.get(path).status_code == 200, path
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200
    return samples


def fill(database_url: str, first: int, last: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(plain_url(database_url), autocommit=True) as conn:
        conn.execute(FILL, {"first": first, "last": last})
        conn.execute("ANALYZE shipments")
    return time.perf_counter() - started


def recount_ms(app) -> float:  # type: ignore[no-untyped-def]
    with app.app_context(), db.new_session() as session:
        started = time.perf_counter()
        overview.count_shipments(session)
        return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--smoke", action="store_true", help="1,000 and 20,000 shipments, 20 requests")
    args = parser.parse_args()
    sizes = (1_000, 20_000) if args.smoke else SIZES
    if args.smoke:
        args.requests = 20
    h = Harness("admin_pages")
    results: dict[int, dict[str, float]] = {}
    try:
        database_url = h.create_database()
        settings = Settings(database_url=database_url, broker_url=BROKER_URL, var_dir=h.out / "var",
                            _env_file=None)  # type: ignore[call-arg]  # fmt: skip
        app = create_app(settings)
        with app.app_context(), db.new_session() as session, session.begin():
            accounts.create_admin(session, "bench@example.com", "bench password")
        client = app.test_client()
        from tests.admin_support import sign_in

        assert sign_in(client, "bench@example.com", "bench password").status_code == 302
        filled = 0
        for size in sizes:
            seconds = fill(database_url, filled + 1, size)
            filled = size
            recount = recount_ms(app)
            print(f"\n[{size:,} shipments] filled in {seconds:.1f}s; one overview recount: {recount:.0f} ms")
            results[size] = {}
            for name, path in pages(app, size).items():
                results[size][name] = p95(measure(client, path, args.requests))
                print(f"  {name:48} p95 {results[size][name]:7.1f} ms")
        small, large = sizes
        print(f"\n{'page':48} {'p95 ' + f'{small:,}':>14} {'p95 ' + f'{large:,}':>16} {'ratio':>7}")
        problems = []
        for name_small, name_large in zip(results[small], results[large], strict=True):
            before, after = results[small][name_small], results[large][name_large]
            ratio = after / before
            print(f"{name_large:48} {before:11.1f} ms {after:13.1f} ms {ratio:7.2f}")
            if after > TARGET_MS:
                problems.append(f"{name_large}: p95 {after:.0f} ms > {TARGET_MS} ms")
            if ratio > RATIO_TARGET:
                problems.append(f"{name_large}: ratio {ratio:.2f} > {RATIO_TARGET}")
        print("\n" + ("\n".join(problems) if problems else "all pages within target"))
        db.engine.dispose()  # type: ignore[union-attr]
        return 1 if problems else 0
    finally:
        h.close()


if __name__ == "__main__":
    sys.exit(main())
