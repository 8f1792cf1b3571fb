"""The admin console's pages at 10,000 and at 1,000,000 shipments (PostgreSQL), side by side.

    .venv/bin/python bench/admin_pages.py [--smoke] [--requests 60]

Two databases are filled with SQL (`INSERT ... SELECT generate_series`), one per size, and each is
served by `manage.py serve`'s gunicorn. A signed-in client then asks both servers for the same page
in turn, so both sides see the same machine load: the shipments page (first page, page 1,000 by
cursor, a filtered page sorted by last event, a tag search, a number prefix) and the overview. The
p95 of each side and the ratio 1,000,000 / 10,000 are printed. Targets: p95 < 100 ms, ratio <= 1.5.

The overview's shipment counts are a cached aggregate that beat refreshes (admin/counts.py): a page
load reads the stored row and never counts (the first warm-up load of a fresh database counts once and
stores it). The cost of one recount, which beat pays every 30 s, is printed apart at each size. The
quota summary is cached 30 s per process; it reads running totals and does not grow with shipments.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from datetime import date, timedelta

import psycopg
import requests
from _harness import PG_ADMIN, PYTHON, Harness, plain_url
from sqlalchemy import select
from sqlalchemy.orm import Session

from lifecycle.admin import counts, shipment_list
from lifecycle.db import make_engine
from lifecycle.shipments.models import Shipment

SIZES = (10_000, 1_000_000)
TARGET_MS = 100
RATIO_TARGET = 1.5
PAGE = shipment_list.PAGE_SIZE
EMAIL, PASSWORD = "bench@example.com", "bench password"
# A Redis database of its own (the harness's default, db 3, is shared with the other benches): the
# web processes' limiter and broker connections land here, and nothing else uses it.
REDIS_URL = "redis://127.0.0.1:6379/7"
FILL = """
INSERT INTO shipments (provider, number, carrier, status, sub_status, tracking, origin, tag, retracked,
    carrier_changes, registration_generation, subscriptions, cost_units, cost_amount, cost_currency,
    registered_at, last_event_at, last_seen_at, last_event_description, last_error, created_at, updated_at)
SELECT '17track', 'RR' || lpad(i::text, 9, '0') || 'CN', 3011,
    (ARRAY['in_transit','delivered','pending','not_found','out_for_delivery','exception'])[1 + i %% 6],
    NULL, CASE WHEN i %% 6 = 1 THEN 'stopped' ELSE 'tracking' END, 'registered',
    'order-' || (i %% 100), false, 0, 1, 0, 1 + i %% 3, 0, 'CNY',
    now() - ((%(count)s::int - i) || ' minutes')::interval,
    CASE WHEN i %% 10 = 0 THEN NULL ELSE now() - ((i %% 50000) || ' minutes')::interval END,
    now() - ((i %% 50000) || ' minutes')::interval,
    'Arrived at facility ' || i, CASE WHEN i %% 100 = 0 THEN 'carrier said no' END, now(), now()
FROM generate_series(1, %(count)s::int) AS i
"""


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] * 1000


def new_database(h: Harness, name: str) -> str:
    """A second database beside the harness's own (dropped in main's `finally`)."""
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    h.run_checked([PYTHON, "manage.py", "db", "upgrade"], h.env(url), f"migrate {name}")
    return url


def fill(url: str, count: int) -> float:
    started = time.perf_counter()
    with psycopg.connect(plain_url(url), autocommit=True) as conn:
        conn.execute(FILL, {"count": count})
        conn.execute("ANALYZE shipments")
    return time.perf_counter() - started


def signed_in(base_url: str) -> requests.Session:
    client = requests.Session()
    page = client.get(f"{base_url}/admin/sign-in", timeout=10).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = {"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    answer = client.post(f"{base_url}/admin/sign-in", data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text[:300]
    return client


def page_cursor(url: str, position: int) -> str:
    """The cursor after `position` rows, newest first (found once with OFFSET, not measured)."""
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            stmt = select(Shipment).order_by(Shipment.id.desc()).offset(position - 1).limit(1)
            return shipment_list._encode(Shipment.id, session.scalars(stmt).one())
    finally:
        engine.dispose()


def recount_ms(url: str) -> float:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            started = time.perf_counter()
            counts.count_shipments(session)
            return (time.perf_counter() - started) * 1000
    finally:
        engine.dispose()


def pages(url: str, size: int) -> dict[str, str]:
    page = min(1000, size // PAGE - 1)
    week_ago = (date.today() - timedelta(days=7)).isoformat()
    return {
        "shipments, first page": "/admin/shipments",
        "shipments, deep page by cursor": f"/admin/shipments?after={page_cursor(url, page * PAGE)}",
        "shipments, filtered (delivered, by last event)": "/admin/shipments?status=delivered&sort=last_event",
        "shipments, tag search": "/admin/shipments?tag=order-7",
        "shipments, has an error + status": "/admin/shipments?has_error=1&status=in_transit",
        "shipments, has an error, by last event": "/admin/shipments?has_error=1&sort=last_event",
        "shipments, registered in the last 7 days": f"/admin/shipments?registered_from={week_ago}",
        "shipments, number prefix": "/admin/shipments?q=RR00000123",
        "overview": "/admin/",
    }


def timed(client: requests.Session, url: str) -> float:
    started = time.perf_counter()
    answer = client.get(url, timeout=30)
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200, (url, answer.status_code)
    return elapsed


def compare(sides: list[tuple[requests.Session, str, dict[str, str]]], requests_per_page: int) -> dict:
    """For each page, both sides in turn (warm-up first); p95 in ms per side."""
    results: dict[str, list[float]] = {}
    for name in sides[0][2]:
        samples: list[list[float]] = [[] for _ in sides]
        for round_ in range(requests_per_page + 3):
            for index, (client, base, paths) in enumerate(sides):
                elapsed = timed(client, base + paths[name])
                if round_ >= 3:
                    samples[index].append(elapsed)
        results[name] = [p95(s) for s in samples]
    return results


def main() -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--smoke", action="store_true", help="1,000 and 20,000 shipments, 20 requests")
    args = parser.parse_args()
    sizes = (1_000, 20_000) if args.smoke else SIZES
    if args.smoke:
        args.requests = 20
    h = Harness("admin_pages")
    h.clear_queues = lambda: None  # type: ignore[method-assign]  (nothing queued; db 3 is not ours)
    second = f"bench_{h.run_id}_large".lower()
    try:
        urls = [h.create_database(), new_database(h, second)]
        sides = []
        for size, url in zip(sizes, urls, strict=True):
            seconds = fill(url, size)
            recount = recount_ms(url)
            print(f"[{size:,} shipments] filled in {seconds:.1f}s; one overview recount: {recount:.0f} ms")
            # The first admin comes from ADMIN_EMAIL / ADMIN_PASSWORD, as in a real deployment.
            base = h.serve(
                f"web-{size}", h.env(url, ADMIN_EMAIL=EMAIL, ADMIN_PASSWORD=PASSWORD, BROKER_URL=REDIS_URL)
            )
            sides.append((signed_in(base), base, pages(url, size)))
        results = compare(sides, args.requests)
        small, large = sizes
        print(f"\n{'page':48} {'p95 ' + f'{small:,}':>14} {'p95 ' + f'{large:,}':>16} {'ratio':>7}")
        problems = []
        for name, (before, after) in results.items():
            ratio = after / before
            print(f"{name:48} {before:11.1f} ms {after:13.1f} ms {ratio:7.2f}")
            if after > TARGET_MS:
                problems.append(f"{name}: p95 {after:.0f} ms > {TARGET_MS} ms")
            if ratio > RATIO_TARGET:
                problems.append(f"{name}: ratio {ratio:.2f} > {RATIO_TARGET}")
        print("\n" + ("\n".join(problems) if problems else "all pages within target"))
        return 1 if problems else 0
    finally:
        h.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{second}" WITH (FORCE)')


if __name__ == "__main__":
    sys.exit(main())
