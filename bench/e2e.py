"""End to end: signed 17TRACK pushes in, shipments updated and delivered parcels stopped, verified.

    .venv/bin/python bench/e2e.py [--smoke] [--count 20000]

Runs our web tier as `serve` runs it (as in bench/webhook_ack.py), one `manage.py worker
--concurrency 2` (prefork, 2 processes), one `manage.py beat` (its sweeper re-sends stoptracks put
off by a 429), a fresh PostgreSQL database, Redis db 3 and the 17TRACK simulator (so stoptrack
calls really happen, at most 3/s). Two phases, N pushes each, with distinct numbers:

  live   workers running while pushes arrive: N / (last row processed - first post).
  drain  pushes posted with the workers stopped, then workers started: worker throughput alone.

Each of N/4 numbers gets a realistic sequence (InfoReceived -> InTransit -> ..., rising event
times); 60% end Delivered. wrk posts them round by round (every number's 1st event, then every
2nd, ..., shuffled within a round) over 64 connections, so a number's events may arrive out of
order. Every shipment must end with the status and time of its newest push, and every delivered
one stopped at the simulator. Stoptrack timing is reported apart from the main figure.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import redis
import requests
from _e2e_report import figures, print_phase
from _harness import (
    API_KEY,
    BENCH_DIR,
    BROKER_URL,
    CELERY_QUEUES,
    PYTHON,
    Harness,
    max_per_second,
    wait_until,
    write_pushes,
)
from _report import arguments, emit, load
from _rss import TreeSampler

# `lifecycle` and `simulators` are importable because _harness put the project root on sys.path.
from lifecycle.providers.seventeentrack import webhook as st
from simulators.seventeentrack import SimulatorServer, pushes

CARRIER = 3011
WRK_THREADS = 2
PROBE = ("InTransit", "InTransit_Other", datetime(2025, 3, 1, tzinfo=UTC))  # status, sub-status, time
BROKER = redis.Redis.from_url(BROKER_URL)
# Each number's four pushes as main/sub status, chosen by number index % 5: three of five end Delivered.
_START = ["InfoReceived/InfoReceived", "InTransit/InTransit_PickedUp"]
SEQUENCES = [_START + ["OutForDelivery/OutForDelivery_Other", "Delivered/Delivered_Other"]] * 3 + [
    _START + ["InTransit/InTransit_Departure", "OutForDelivery/OutForDelivery_Other"],
    _START + ["InTransit/InTransit_Departure", "InTransit/InTransit_Arrival"],
]


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # the database stores naive UTC


def make_pushes(prefix: str, count: int) -> tuple[list[tuple[bytes, str]], dict[str, tuple[str, datetime]]]:
    """`count` signed bodies in posting order, and each number's expected (status, event time)."""
    items: list[tuple[bytes, str]] = []
    expected: dict[str, tuple[str, datetime]] = {}
    for number, body, status, when in iter_pushes(prefix, count):
        items.append((body, st.sign(body, API_KEY)))
        expected[number] = (status, when)
    return items, expected


def iter_pushes(prefix: str, count: int) -> Iterator[tuple[str, bytes, str, datetime]]:
    """`count` (number, body, status, naive UTC event time) in posting order, over count/4 numbers:
    each number's sequence step by step, the numbers shuffled within a step (the last push of a
    number is its expected state). A generator, so a million pushes are never held at once."""
    rng, base = random.Random(prefix), datetime(2025, 3, 1, tzinfo=UTC)
    numbers = [f"{prefix}{j:07d}" for j in range(math.ceil(count / 4))]
    made = 0
    for step in range(4):
        order = list(enumerate(numbers))
        rng.shuffle(order)
        for j, number in order[: count - made]:
            main, sub = SEQUENCES[j % 5][step].split("/")
            when = base + timedelta(seconds=j, hours=step)
            body = pushes.encode(pushes.tracking_updated(number, CARRIER, main, sub, when))
            made += 1
            yield number, body, st.map_status(main, sub)[0], when.replace(tzinfo=None)  # type: ignore[misc]


def post_all(h: Harness, url: str, name: str, items: list[tuple[bytes, str]], timeout: float) -> dict:
    """POST every push once with wrk (bench/wrk_once.lua), which leaves the CPU to the service.

    Unlike 17TRACK, wrk does not retry a non-200; there must be none, so they are counted instead.
    """
    data, marker = h.out / f"{name}.pushes", h.out / f"{name}.done-"
    write_pushes(data, items)
    script = str(BENCH_DIR / "wrk_once.lua")
    cmd = ["wrk", f"-t{WRK_THREADS}", "-c64", "-d3600s", "--timeout", "30s", "-s", script]
    started = time.monotonic()
    h.start(f"wrk-{name}", [*cmd, f"{url}/webhooks/17track", "--", str(data), str(WRK_THREADS), str(marker)])
    markers = [Path(f"{marker}{t}") for t in range(WRK_THREADS)]
    wait_until(f"{name}: every push answered", lambda: all(m.exists() for m in markers), timeout, 0.05)
    seconds = time.monotonic() - started
    h.stop(f"wrk-{name}")  # its threads have stopped; wrk itself would sleep out -d
    counts = [[int(x) for x in m.read_text().split()] for m in markers]
    sent, failed = sum(c[0] for c in counts), sum(c[1] for c in counts)
    return {"seconds": seconds, "sent": sent, "failed": failed}


def inbox_done(db: psycopg.Connection, after_id: int, total: int) -> tuple | None:
    # Polled every 0.2 s while the workers drain: first the cheap question (the pending rows' own
    # partial index), so the bench's polling does not take the database's CPU from the workers.
    pending = db.execute("SELECT count(*) FROM inbox WHERE status = 'pending' AND id > %s", (after_id,))
    if pending.fetchone()[0]:
        return None
    row = db.execute(
        "SELECT count(*) FILTER (WHERE status = 'pending'), count(*), max(processed_at), "
        "min(processed_at) FROM inbox WHERE id > %s",
        (after_id,),
    ).fetchone()
    return row if row[0] == 0 and row[1] >= total else None


def stoptracks_settled(db: psycopg.Connection) -> bool:
    query = """SELECT (SELECT count(*) FROM shipments WHERE tracking = 'stopping')
                    + (SELECT count(*) FROM operations WHERE status IN ('pending', 'in_flight'))"""
    return db.execute(query).fetchone()[0] == 0


def run_phase(h, db, sim, url, env, name, count, workers_running, timeout):  # type: ignore[no-untyped-def]
    items, expected = make_pushes(name.upper(), count)
    after_id = db.execute("SELECT coalesce(max(id), 0) FROM inbox").fetchone()[0]
    load_before, sampler = load(), None
    phase_start = first_post = utcnow()
    t_first = time.time()
    posting = post_all(h, url, name, items, timeout)
    # Signals the web tier sent that no worker has taken yet (each is a Celery message).
    result = {"posting": posting, "queued": sum(BROKER.llen(q) for q in CELERY_QUEUES)}
    if not workers_running:
        # Every 200 is a committed row, so all N are pending now; time the pool alone from here.
        h.start_worker(env)
        t_first, first_post = time.time(), utcnow()
        sampler = TreeSampler(h.procs["worker"].pid).start()  # the Celery worker and its pool
    pending, total, last, first = wait_until(
        f"{name}: inbox drained",
        lambda: inbox_done(db, after_id, posting["sent"] - posting["failed"]),
        timeout,
    )
    result["load"] = (load_before, load())
    if sampler:
        result["worker_rss"] = sampler.stop()
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
    result["probe"] = probe(db, url, sim, name, t_first) if delivered else float("nan")
    stop_timeout = 120 + 2 * delivered / 40 / 2.7  # 40 numbers per call at under 3 calls/s, twice over
    try:  # reported apart: a stalled stoptrack must not hide the figures above (verify() flags it)
        wait_until(f"{name}: stoptracks settled", lambda: stoptracks_settled(db), stop_timeout, 0.5)
        result["stoptrack_seconds"] = time.time() - t_first
    except TimeoutError:
        result["stoptrack_seconds"] = float("nan")
    result["first_stoptrack"] = (
        min((c["at"] for c in sim.calls("stoptrack") if c["at"] > t_first), default=t_first) - t_first
    )
    result["delivered_to_stoptrack"] = delivered_to_stoptrack(db, phase_start)
    return result


def delivered_to_stoptrack(db: psycopg.Connection, since: datetime) -> float:
    """Seconds from the first push that made a shipment delivered being applied (its transition
    recorded) to the first stoptrack done: whether provider calls wait behind the drain."""
    applied, stopped = db.execute(
        """SELECT (SELECT min(recorded_at) FROM transitions
                   WHERE to_status = 'delivered' AND kind <> 'stale' AND recorded_at >= %(since)s),
                  (SELECT min(completed_at) FROM operations
                   WHERE kind = 'stoptrack' AND status = 'done' AND completed_at >= %(since)s)""",
        {"since": since},
    ).fetchone()
    return (stopped - applied).total_seconds() if applied and stopped else float("nan")


def probe(db: psycopg.Connection, url: str, sim: SimulatorServer, name: str, since: float) -> float:
    """Once stoptracks are being sent, post one more push: seconds until a worker has processed it."""
    wait_until(
        "a first stoptrack call", lambda: any(c["at"] > since for c in sim.calls("stoptrack")), 300, 0.1
    )
    body = pushes.encode(pushes.tracking_updated(f"PROBE{name.upper()}", CARRIER, *PROBE))
    started = time.monotonic()
    headers = {"sign": st.sign(body, API_KEY), "Content-Type": "application/json"}
    inbox_id = requests.post(f"{url}/webhooks/17track", data=body, headers=headers, timeout=30).json()[
        "inbox_id"
    ]
    query = "SELECT status <> 'pending' FROM inbox WHERE id = %s"
    wait_until("the probe processed", lambda: db.execute(query, (inbox_id,)).fetchone()[0], 600, 0.05)
    return time.monotonic() - started


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


def main() -> int:
    parser = arguments(__doc__, smoke="500 pushes per phase")
    parser.add_argument("--count", type=int, default=20_000, help="pushes per phase")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed for each phase's drain")
    args = parser.parse_args()
    count = 500 if args.smoke else args.count
    if shutil.which("wrk") is None:
        print("wrk is not installed: `apt-get install -y wrk` (or build it from github.com/wg/wrk)")
        return 2

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the simulator's access log
    h = Harness("e2e")
    sim = SimulatorServer(API_KEY).__enter__()
    results = {}
    try:
        database_url = h.create_database()
        env = h.env(database_url, SEVENTEENTRACK_API_URL=sim.url)
        h.start("beat", [PYTHON, "manage.py", "beat"], env)
        url = h.serve("web", env)
        expected = make_pushes("LIVE", count)[1] | make_pushes("DRAIN", count)[1]
        expected |= {
            f"PROBE{name}": ("in_transit", PROBE[2].replace(tzinfo=None)) for name in ("LIVE", "DRAIN")
        }
        for number in expected:  # registered at 17TRACK by someone, as adopted numbers are
            sim.add_parcel(number, CARRIER)
        delivered = sum(1 for status, _ in expected.values() if status == "delivered")
        print(
            f"e2e: {count} pushes per phase over {len(expected) // 2 - 1} numbers each, {delivered} delivered"
            f" in all; web: serve (gunicorn, 2 uvicorn workers), 1 celery worker prefork 2 processes + beat;"
            f" logs in {h.out}"
        )
        with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as db:
            try:
                h.start_worker(env)
                for name in ("live", "drain"):
                    if name == "drain":
                        h.stop("worker")
                    results[name] = run_phase(h, db, sim, url, env, name, count, name == "live", args.timeout)
                    print_phase(name, results[name], count)
            except TimeoutError as exc:
                state = db.execute(STATE_QUERY).fetchall()
                print(f"\nFAIL: {exc}\nstate: {dict(state)}")
                return 1
            problems = verify(db, expected, sim)
            for name, r in results.items():  # wrk does not retry like 17TRACK: there must be no need
                if r["posting"]["sent"] != count or r["posting"]["failed"]:
                    problems.append(f"{name}: {r['posting']} pushes sent/not accepted, of {count}")
            shipments = db.execute("SELECT tracking, count(*) FROM shipments GROUP BY 1").fetchall()
        calls = sim.calls("stoptrack")
    finally:
        h.close()
        sim.__exit__(None, None, None)

    print(
        f"\nstoptrack calls to the simulator: {len(calls)}, numbers sent {sum(c['items'] for c in calls)}, "
        f"max calls in any 1 s: {max_per_second([c['at'] for c in calls])} (limit 3; more means 429s)"
    )
    print(f"shipments by tracking: {dict(shipments)}")
    for problem in problems[:10]:
        print("  problem:", problem)
    emit(figures(results, len(problems)), args.json, "e2e")
    print(
        f"correctness ({len(expected)} shipments):",
        "PASS" if not problems else f"FAIL ({len(problems)} problems)",
    )
    return 0 if not problems else 1


# What is where when a phase times out.
STATE_QUERY = """SELECT 'inbox ' || status, count(*) FROM inbox GROUP BY 1
    UNION ALL SELECT 'operations ' || status, count(*) FROM operations GROUP BY 1
    UNION ALL SELECT 'shipments ' || tracking, count(*) FROM shipments GROUP BY 1"""


if __name__ == "__main__":
    sys.exit(main())
