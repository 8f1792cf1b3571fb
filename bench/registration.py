"""Registration throughput against the 17TRACK simulator's 3 requests/s limit.

    .venv/bin/python bench/registration.py [--smoke] [--count 10000]

N numbers (default 10,000; --smoke: 400) are queued with `manage.py import FILE.csv` (a generated
CSV, timed on its own), then one `manage.py worker --concurrency 2` (and `manage.py beat`, as in
production) registers them with the simulator (in this process, 3 requests/s, 40 numbers per call).
Throughput is timed from the first `register` call the simulator receives to the last operation
settled (max operations.completed_at), and compared with the limit: 3 calls/s x 40 = 120 numbers/s.
The simulator's call log gives calls, items per call, the most calls in any 1 s and 429 answers.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time

import psycopg
from _harness import API_KEY, PYTHON, Harness, max_per_second, plain_url, wait_until
from _report import arguments, emit, load, row

from lifecycle.providers.seventeentrack.adapter import WINDOW_SECONDS
from simulators.seventeentrack import SimulatorServer

CARRIER = 3011
RATE, BATCH = 3, 40
LIMIT = RATE * BATCH  # numbers/s the provider allows
TARGET = 0.95


def write_csv(path, count: int) -> None:  # type: ignore[no-untyped-def]
    with open(path, "w") as out:
        out.write("number,carrier,lang,tag\n")
        for i in range(count):
            out.write(f"RR{i:09d}CN,{CARRIER},,bench\n")


def counts(db: psycopg.Connection) -> dict[str, int]:
    rows = db.execute("SELECT status, count(*) FROM operations WHERE kind = 'register' GROUP BY 1")
    return dict(rows.fetchall())


def main() -> int:
    parser = arguments(__doc__, smoke="400 numbers")
    parser.add_argument("--count", type=int, default=10_000, help="numbers to register")
    args = parser.parse_args()
    count = 400 if args.smoke else args.count
    # 3x the time the limit needs, plus start-up: a stall fails instead of hanging.
    timeout = 120 + 3 * count / LIMIT

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the simulator's access log
    h = Harness("registration")
    sim = SimulatorServer(API_KEY, rate_per_second=RATE, quota_total=1_000_000, step_seconds=None)
    sim.start()
    try:
        database_url = h.create_database()
        env = h.env(database_url, SEVENTEENTRACK_API_URL=sim.url, SEVENTEENTRACK_PLAN="pro")
        csv_path = h.out / "numbers.csv"
        write_csv(csv_path, count)
        print(
            f"registration: {count} numbers, simulator at {RATE} req/s x {BATCH}/call = {LIMIT} numbers/s; "
            f"1 celery worker (prefork 2) + beat; logs in {h.out}"
        )
        others = h.foreign_workers()
        if others:
            print(
                f"  warning: other Celery workers are running (pids {others[:5]}): they may share Redis db 3"
            )

        h.clear_queues()  # signals left in db 3 by earlier runs; the import's own nudges stay
        started = time.monotonic()
        h.run_checked([PYTHON, "manage.py", "import", str(csv_path)], env, "import", timeout=timeout)
        import_seconds = time.monotonic() - started
        print(f"\nimport: {count} rows queued in {import_seconds:.1f}s ({count / import_seconds:.0f} rows/s)")

        with psycopg.connect(plain_url(database_url), autocommit=True) as db:
            queued = counts(db)
            if queued.get("pending") != count:
                print(
                    f"FAIL: after the import, register operations by status: {queued}, want {count} pending"
                )
                return 1
            load_before = load()
            h.start("beat", [PYTHON, "manage.py", "beat"], env)
            ready = h.start_worker(env)
            try:
                wait_until("the first register call", lambda: sim.calls("register"), 60, 0.02)
                wait_until(
                    "every register operation settled",
                    lambda: sum(n for s, n in counts(db).items() if s in ("done", "failed")) >= count,
                    timeout,
                    0.1,
                )
            except TimeoutError as exc:
                print(f"\nFAIL: {exc}; register operations by status: {counts(db)}")
                return 1
            during = (load_before, load())
            final = counts(db)
            last_done = db.execute(
                "SELECT extract(epoch FROM max(completed_at)) FROM operations WHERE kind = 'register'"
            ).fetchone()[0]
            ledger_units = db.execute("SELECT coalesce(sum(units), 0) FROM ledger").fetchone()[0]
            tracking = dict(db.execute("SELECT tracking, count(*) FROM shipments GROUP BY 1").fetchall())
        calls = sim.calls("register")
        with sim.state.lock:
            parcels, quota_used = len(sim.state.parcels), sim.state.quota.used
    finally:
        h.close()
        sim.stop()

    first, last = calls[0]["at"], calls[-1]["at"]
    seconds = float(last_done) - first
    rate = count / seconds
    items = [c["items"] for c in calls]
    statuses: dict[object, int] = {}
    for call in calls:
        statuses[call["status"]] = statuses.get(call["status"], 0) + 1
    gaps = [b["at"] - a["at"] for a, b in zip(calls, calls[1:], strict=False)]
    ceiling = RATE / WINDOW_SECONDS * BATCH  # what the service's own limiter window allows
    print(
        f"worker ready -> first register call: {first - ready:.2f}s; "
        f"first call -> last operation settled: {seconds:.1f}s"
    )
    print(f"\nregistered {count} numbers in {seconds:.1f}s: {rate:.1f} numbers/s")
    print(f"  ratio to the limit ({RATE} x {BATCH} = {LIMIT}/s): {rate / LIMIT:.3f}  (target >= {TARGET})")
    print(
        f"  calls: {len(calls)} ({(len(calls) - 1) / (last - first):.2f} calls/s first->last call), "
        f"items per call max {max(items)} / mean {statistics.mean(items):.1f}, "
        f"max calls in any 1 s: {max_per_second([c['at'] for c in calls])}, "
        f"429s: {statuses.get(429, 0)}, statuses {statuses}"
    )
    print(
        f"  gap between calls: median {statistics.median(gaps) * 1000:.0f} ms, "
        f"p95 {sorted(gaps)[int(len(gaps) * 0.95)] * 1000:.0f} ms, max {max(gaps) * 1000:.0f} ms"
    )
    print(
        f"  the service's limiter allows {RATE} calls per {WINDOW_SECONDS}s window "
        f"(lifecycle.providers.seventeentrack.adapter.WINDOW_SECONDS): at most {ceiling:.1f} numbers/s, "
        f"{ceiling / LIMIT:.3f} of the limit"
    )
    problems = []
    if final.get("done") != count:
        problems.append(f"register operations by status {final}, want {count} done")
    if parcels != count or quota_used != count:
        problems.append(f"simulator holds {parcels} parcels, quota used {quota_used}; want {count}")
    if ledger_units != count:
        problems.append(f"ledger charged {ledger_units} units, want {count}")
    if tracking.get("tracking") != count:
        problems.append(f"shipments by tracking {tracking}, want {count} tracking")
    for problem in problems:
        print("  problem:", problem)
    emit(
        [
            row("registration numbers/s / 3 req/s x 40", rate, "numbers/s", during, reference=LIMIT,
                check="ratio", op=">=", threshold=TARGET),
            row("registration 429 answers", statuses.get(429, 0), "", during, check="ours", op="<=",
                threshold=0),
        ],
        args.json,
        "registration",
    )  # fmt: skip
    verdict = "PASS" if rate / LIMIT >= TARGET else "BELOW TARGET"
    print(
        f"checks: {'ok' if not problems else 'FAIL'}; throughput {verdict} ({rate / LIMIT:.3f} vs {TARGET})"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
