"""End to end: signed 17TRACK pushes in, shipments updated and delivered parcels stopped, verified.

    .venv/bin/python bench/e2e.py [--smoke] [--count 20000]

Runs our gunicorn (same settings as bench/webhook_ack.py), one `manage.py worker --concurrency 2`
(a prefork pool of 2 processes), one `manage.py beat` (the sweeper re-sends stoptracks the
provider answered 429), a fresh PostgreSQL database, Redis db 14 and the 17TRACK simulator (so
stoptrack calls really happen, rate-limited to 3/s). Two phases, N pushes each, distinct numbers:

  live   workers running while pushes arrive: N / (last row processed - first post).
  drain  pushes posted with the workers stopped, then workers started: worker throughput alone.

Each number gets a realistic sequence (InfoReceived -> InTransit -> ... with rising event times);
60% end Delivered. Pushes are posted round by round (every number's 1st event, then every 2nd, ...,
shuffled within a round) by 16 client threads, so neighbouring events may arrive out of order.
Afterwards every shipment must hold the status and time of its newest push, and every delivered
one must be stopped at the simulator. Stoptrack timing is reported apart from the main figure.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import requests
from _harness import API_KEY, PYTHON, Harness, free_port, gunicorn

# `lifecycle` is importable because _harness put the project root on sys.path.
from lifecycle.providers import pushes
from lifecycle.providers import seventeentrack as st
from lifecycle.simulator.seventeentrack import SimulatorServer

CARRIER = 3011
SEQUENCES = [  # by number index % 5: three of five end Delivered
    [
        ("InfoReceived", "InfoReceived"),
        ("InTransit", "InTransit_PickedUp"),
        ("OutForDelivery", "OutForDelivery_Other"),
        ("Delivered", "Delivered_Other"),
    ],
] * 3 + [
    [
        ("InfoReceived", "InfoReceived"),
        ("InTransit", "InTransit_PickedUp"),
        ("InTransit", "InTransit_Departure"),
        ("OutForDelivery", "OutForDelivery_Other"),
    ],
    [
        ("InfoReceived", "InfoReceived"),
        ("InTransit", "InTransit_PickedUp"),
        ("InTransit", "InTransit_Departure"),
        ("InTransit", "InTransit_Arrival"),
    ],
]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # the database stores naive UTC


def make_pushes(prefix: str, count: int) -> tuple[list[tuple[bytes, str]], dict[str, tuple[str, datetime]]]:
    """`count` signed bodies in posting order, and each number's expected (status, event time)."""
    rng, base = random.Random(prefix), datetime(2025, 3, 1, tzinfo=UTC)
    numbers = [f"{prefix}{j:07d}" for j in range(math.ceil(count / 4))]
    items: list[tuple[bytes, str]] = []
    expected: dict[str, tuple[str, datetime]] = {}
    for step in range(4):
        order = list(enumerate(numbers))
        rng.shuffle(order)
        for j, number in order[: count - len(items)]:
            main, sub = SEQUENCES[j % 5][step]
            when = base + timedelta(seconds=j, hours=step)
            body = pushes.encode(pushes.tracking_updated(number, CARRIER, main, sub, when))
            items.append((body, st.sign(body, API_KEY)))
            expected[number] = (st.map_status(main, sub)[0], when.replace(tzinfo=None))  # type: ignore[assignment]
    return items, expected


def post_all(url: str, items: list[tuple[bytes, str]], threads: int = 16) -> dict[str, float]:
    """POST every body; like 17TRACK, retry anything but a 200 (it must not happen, so count it)."""
    local, lock = threading.local(), threading.Lock()
    stats = {"retries": 0, "failed": 0}

    def send(item: tuple[bytes, str]) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        for attempt in range(5):
            try:
                response = local.session.post(
                    url,
                    data=item[0],
                    timeout=30,
                    headers={"sign": item[1], "Content-Type": "application/json"},
                )
                if response.status_code == 200:
                    return
            except requests.RequestException:
                pass
            with lock:
                stats["retries"] += 1
            time.sleep(0.2 * (attempt + 1))
        with lock:
            stats["failed"] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, items))
    return {**stats, "seconds": time.monotonic() - started}


def wait_until(what: str, check, timeout: float, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")


def inbox_done(db: psycopg.Connection, after_id: int, total: int) -> tuple | None:
    row = db.execute(
        "SELECT count(*) FILTER (WHERE status = 'pending'), count(*), max(processed_at), "
        "min(processed_at) FROM inbox WHERE id > %s",
        (after_id,),
    ).fetchone()
    return row if row[0] == 0 and row[1] >= total else None


def stoptracks_settled(db: psycopg.Connection) -> bool:
    stopping = db.execute("SELECT count(*) FROM shipments WHERE tracking = 'stopping'").fetchone()[0]
    open_ops = db.execute(
        "SELECT count(*) FROM operations WHERE status IN ('pending', 'in_flight')"
    ).fetchone()[0]
    return stopping == 0 and open_ops == 0


def start_workers(h: Harness, env: dict[str, str]) -> float:
    """Start the pool and return when it is consuming (its 'ready.' log line)."""
    log = h.out / "worker.log"
    offset = log.stat().st_size if log.exists() else 0
    h.start(
        "worker", [PYTHON, "manage.py", "worker", "--concurrency", "2", "--hostname", f"{h.run_id}@%h"], env
    )
    wait_until("the worker's 'ready.' line", lambda: b" ready." in log.read_bytes()[offset:], 90, 0.05)
    return time.monotonic()


def run_phase(h, db, url, env, name, count, workers_running, timeout):  # type: ignore[no-untyped-def]
    items, expected = make_pushes(name.upper(), count)
    after_id = db.execute("SELECT coalesce(max(id), 0) FROM inbox").fetchone()[0]
    first_post, t_first = utcnow(), time.monotonic()
    posting = post_all(f"{url}/webhooks/17track", items)
    result = {"posting": posting, "expected": expected}
    if not workers_running:
        # Every 200 is a committed row, so all N are pending now; time the pool alone from here.
        t_first, first_post = start_workers(h, env), utcnow()
    pending, total, last, first = wait_until(
        f"{name}: inbox drained", lambda: inbox_done(db, after_id, count), timeout
    )
    result["seconds"] = (last - first_post).total_seconds()
    result["rate"] = count / result["seconds"]
    # Between the first and the last batch commit: the pool's steady rate, without start-up.
    first_batch = db.execute(
        "SELECT count(*) FROM inbox WHERE id > %s AND processed_at = %s", (after_id, first)
    ).fetchone()[0]
    span = (last - first).total_seconds()
    result["steady_rate"] = (count - first_batch) / span if span > 0 else float("nan")
    result["outcomes"] = dict(
        db.execute(
            "SELECT coalesce(outcome, status), count(*) FROM inbox WHERE id > %s GROUP BY 1", (after_id,)
        ).fetchall()
    )
    delivered = sum(1 for status, _ in expected.values() if status == "delivered")
    stop_timeout = 120 + 2 * delivered / 40 / 2.7  # 40 numbers per call at under 3 calls/s, twice over
    wait_until(f"{name}: stoptracks settled", lambda: stoptracks_settled(db), stop_timeout, 0.5)
    result["stoptrack_seconds"] = time.monotonic() - t_first
    return result


def verify(
    db: psycopg.Connection, expected: dict[str, tuple[str, datetime]], sim: SimulatorServer
) -> list[str]:
    problems: list[str] = []
    rows = db.execute("SELECT number, status, tracking, last_event_at FROM shipments").fetchall()
    seen = {}
    for number, status, tracking, last in rows:
        if number in seen:
            problems.append(f"{number}: more than one shipment row")
        seen[number] = (status, tracking, last)
    for number, (status, when) in expected.items():
        got = seen.get(number)
        want_tracking = ("stopping", "stopped") if status == "delivered" else ("tracking",)
        if got is None:
            problems.append(f"{number}: no shipment")
        elif got[0] != status or got[2] != when:
            problems.append(f"{number}: status {got[0]} @ {got[2]}, newest push says {status} @ {when}")
        elif got[1] not in want_tracking:
            problems.append(f"{number} ({status}): tracking {got[1]}, want {'/'.join(want_tracking)}")
        elif (sim.state.parcels[number].tracking == "Stopped") != (status == "delivered"):
            problems.append(f"{number} ({status}): simulator says {sim.state.parcels[number].tracking}")
    problems += [f"unexpected shipment {n}" for n in seen.keys() - expected.keys()]
    failed = db.execute("SELECT count(*) FROM inbox WHERE status <> 'processed'").fetchone()[0]
    if failed:
        problems.append(f"{failed} inbox row(s) not processed")
    return problems


def max_per_second(times: list[float]) -> int:
    times.sort()
    return max((sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)), default=0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20_000, help="pushes per phase")
    parser.add_argument("--smoke", action="store_true", help="500 pushes per phase")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed for each phase's drain")
    args = parser.parse_args()
    count = 500 if args.smoke else args.count

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the simulator's access log
    h = Harness("e2e")
    sim = SimulatorServer(API_KEY).__enter__()
    results = {}
    try:
        database_url = h.create_database()
        env = h.env(database_url, SEVENTEENTRACK_API_URL=sim.url)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        h.start("web", gunicorn("lifecycle.wsgi:app", port), env)
        h.start("beat", [PYTHON, "manage.py", "beat"], env)
        h.wait_healthy("web", url)
        with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as db:
            for phase in ("live", "drain"):
                _, expected = make_pushes(phase.upper(), count)
                for number in expected:  # registered at 17TRACK by someone, as adopted numbers are
                    sim.add_parcel(number, CARRIER)
            start_workers(h, env)
            results["live"] = run_phase(h, db, url, env, "live", count, True, args.timeout)
            h.stop("worker")
            results["drain"] = run_phase(h, db, url, env, "drain", count, False, args.timeout)
            expected = results["live"]["expected"] | results["drain"]["expected"]
            problems = verify(db, expected, sim)
            shipments = db.execute("SELECT tracking, count(*) FROM shipments GROUP BY 1").fetchall()
        calls = sim.calls("stoptrack")
    finally:
        h.close()
        sim.__exit__(None, None, None)

    delivered = sum(1 for status, _ in expected.values() if status == "delivered")
    print(
        f"\ne2e: {count} pushes per phase over {len(expected) // 2} numbers each, {delivered} delivered "
        f"in all; gunicorn 2x16 threads, 1 celery worker prefork 2 processes + beat, 2 CPU cores"
    )
    for name, r in results.items():
        p = r["posting"]
        print(
            f"\n[{name}] posted {count} in {p['seconds']:.1f}s ({count / p['seconds']:.0f}/s client), "
            f"{p['retries']} retries, {p['failed']} never accepted"
        )
        start = "first post" if name == "live" else "worker ready"
        print(
            f"  processed all {count} in {r['seconds']:.1f}s from {start}: {r['rate']:.0f} events/s "
            f"(steady, first->last batch commit: {r['steady_rate']:.0f} events/s)"
        )
        print(f"  outcomes: {r['outcomes']}")
        print(f"  stoptracks settled {r['stoptrack_seconds']:.1f}s after {start}")
    print(
        f"\nstoptrack calls to the simulator: {len(calls)}, numbers sent {sum(c['items'] for c in calls)}, "
        f"max calls in any 1 s: {max_per_second([c['at'] for c in calls])} (limit 3; more means 429s)"
    )
    print(f"shipments by tracking: {dict(shipments)}")
    for problem in problems[:10]:
        print("  problem:", problem)
    print(
        f"correctness ({len(expected)} shipments):",
        "PASS" if not problems else f"FAIL ({len(problems)} problems)",
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
