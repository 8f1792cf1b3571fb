"""The worker's memory while it drains a backlog of a million pushes (issue 11: "worker peak RSS
draining 1,000,000 events: flat, stated").

    .venv/bin/python bench/drain_memory.py [--smoke] [--count 1000000] [--json PATH]

`--count` signed-shape 17TRACK TRACKING_UPDATED bodies (bench/e2e.py's sequences: 4 per number,
60% of numbers end Delivered) are COPYed into the inbox as pending rows, as if the web tier had
acknowledged them while no worker ran. Then one `manage.py worker --concurrency 2` and `manage.py
beat` start against the 17TRACK simulator (delivered parcels are stopped while the drain goes on),
and the drain is signalled. Until no row is pending, the resident memory of the worker's whole
process tree (main process and prefork pool) is sampled every 0.25 s, and every 2 s against the
events processed so far. Reported: RSS at ready, the peak over the first tenth of the events, the
peak over all of them (their ratio says whether memory grows with the backlog), and the drain's
rate. Checked: no row left pending or failed, and every number's final status and event time.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime

import psycopg
from _harness import API_KEY, BROKER_URL, Harness, plain_url, wait_until
from _report import arguments, emit, load, row
from _rss import TreeSampler, process_tree, rss_kib
from e2e import CARRIER, iter_pushes

from config.settings import Settings
from simulators.seventeentrack import SimulatorServer

PREFIX = "MEM"
MB = 1024 / 1e6  # KiB -> MB (10^6 bytes)


def copy_backlog(database_url: str, count: int) -> dict[str, tuple[str, datetime]]:
    """The pushes as pending inbox rows, streamed (never all in memory); returns the expected states."""
    expected: dict[str, tuple[str, datetime]] = {}
    received = datetime.now(UTC).replace(tzinfo=None)
    with psycopg.connect(plain_url(database_url), autocommit=True) as db:
        with db.cursor().copy("COPY inbox (provider, source, body, received_at, status) FROM STDIN") as copy:
            for number, body, status, when in iter_pushes(PREFIX, count):
                copy.write_row(("17track", "push", body, received, "pending"))
                expected[number] = (status, when)
        db.execute("VACUUM ANALYZE inbox")
    return expected


def signal_drain(database_url: str) -> None:
    """What the web tier's nudger would have sent: one drain signal (beat's sweeper is the backstop)."""
    from lifecycle import create_app, runtime

    settings = Settings(_env_file=None, database_url=database_url, broker_url=BROKER_URL)  # type: ignore[call-arg]
    with create_app(settings).app_context():
        runtime.signal(runtime.DRAIN_INBOX)


def drain_and_sample(
    h: Harness, db: psycopg.Connection, env: dict[str, str], count: int, timeout: float
) -> dict:
    """Start the worker, signal the drain, sample RSS until nothing is pending; the figures."""
    ready = h.start_worker(env)
    worker = h.procs["worker"].pid
    sampler = TreeSampler(worker).start()
    signal_drain(env["DATABASE_URL"])
    progress: list[tuple[int, int]] = []  # (events processed, RSS of the tree in KiB)

    def drained() -> bool:
        pending = db.execute("SELECT count(*) FROM inbox WHERE status = 'pending'").fetchone()[0]
        progress.append((count - pending, sum(rss_kib(pid) for pid in process_tree(worker))))
        return pending == 0

    wait_until("the backlog drained", drained, timeout, 2.0)
    last = db.execute("SELECT max(processed_at) FROM inbox").fetchone()[0]
    rss = sampler.stop()
    tenth = [kib for done, kib in progress if done <= count / 10] or [progress[0][1]]
    return {
        "seconds": last.replace(tzinfo=UTC).timestamp() - ready,
        "rss": rss,
        "first_tenth_peak_kib": max(tenth),
        "progress": progress,
    }


def verify(db: psycopg.Connection, expected: dict[str, tuple[str, datetime]]) -> list[str]:
    problems = []
    left = db.execute("SELECT status, count(*) FROM inbox WHERE status <> 'processed' GROUP BY 1").fetchall()
    if left:
        problems.append(f"inbox rows not processed: {dict(left)}")
    got = {n: (s, t) for n, s, t in db.execute("SELECT number, status, last_event_at FROM shipments")}
    wrong = [n for n, state in expected.items() if got.get(n) != state]
    if wrong:
        problems.append(
            f"{len(wrong)} of {len(expected)} shipments in the wrong final state, e.g. {wrong[:3]}"
        )
    return problems


def main() -> int:
    parser = arguments(__doc__, smoke="2,000 pushes")
    parser.add_argument("--count", type=int, default=1_000_000, help="pushes in the backlog")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed for the drain")
    args = parser.parse_args()
    count = 2000 if args.smoke else args.count
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the simulator's access log
    h = Harness("drainmem")
    sim = SimulatorServer(API_KEY).__enter__()
    try:
        database_url = h.create_database()
        started = time.monotonic()
        expected = copy_backlog(database_url, count)
        print(f"drain_memory: {count:,} pushes over {len(expected):,} numbers copied into the inbox "
              f"in {time.monotonic() - started:.0f}s; logs in {h.out}")  # fmt: skip
        for number in expected:  # registered at 17TRACK by someone, as adopted numbers are
            sim.add_parcel(number, CARRIER)
        env = h.env(database_url, SEVENTEENTRACK_API_URL=sim.url)
        h.start("beat", [sys.executable, "manage.py", "beat"], env)
        with psycopg.connect(plain_url(database_url), autocommit=True) as db:
            before = load()
            result = drain_and_sample(h, db, env, count, args.timeout)
            during = (before, load())
            h.stop("worker")
            problems = verify(db, expected)
    finally:
        h.close()
        sim.__exit__(None, None, None)
    rss = result["rss"]
    for done, kib in result["progress"][:: max(1, len(result["progress"]) // 10)]:
        print(f"  {done:>9,} events processed: worker tree RSS {kib * MB:.0f} MB")
    print(f"  drained {count:,} events in {result['seconds']:.0f}s from worker ready: "
          f"{count / result['seconds']:.0f} events/s")  # fmt: skip
    emit(
        [
            row(f"worker peak RSS draining {count:,} events (main + pool)", rss["peak_total_kib"] * MB, "MB",
                during, reference=result["first_tenth_peak_kib"] * MB,
                note=f"reference: peak over the first tenth; {rss['first_total_kib'] * MB:.0f} MB at ready, "
                     f"largest process {rss['peak_process_kib'] * MB:.0f} MB, "
                     f"{count / result['seconds']:.0f} events/s"),
        ],
        args.json,
        "drain_memory",
    )  # fmt: skip
    for problem in problems:
        print("  problem:", problem)
    print(f"correctness ({len(expected):,} shipments):", "PASS" if not problems else "FAIL")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
