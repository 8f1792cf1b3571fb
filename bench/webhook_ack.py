"""Webhook acknowledgement throughput: our app vs a bare Flask endpoint, same run.

    .venv/bin/python bench/webhook_ack.py [--smoke] [--duration 10] [--connections 64] [--json PATH]

Ours runs with `manage.py serve`'s own command line (bench/_harness.py `ours`: gunicorn with
uvicorn's workers); the reference, issue 11's, is a bare Flask endpoint that only reads the body,
under gunicorn's threaded workers with as many processes, and as many threads as `serve` gives
Flask (`bare_flask`). The three sides are loaded in turn by `wrk` with the same signed 17TRACK
pushes: bare Flask, ours on PostgreSQL, and ours on the embedded default (SQLite under VAR_DIR,
filesystem broker). Ours verifies the signature, parses the
envelope and commits each body to the inbox before answering 200. The ratio ours/bare says how much
of the web tier's capacity the durable ack costs; p99 latencies are compared too. No Celery worker
runs: the stored rows simply stay pending.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from _harness import API_KEY, BARE_OPTS, BENCH_DIR, PYTHON, SERVE_OPTS, Harness, bare_flask, write_pushes
from _report import Load, Row, arguments, emit, load, row

# `lifecycle` and `simulators` are importable because _harness put the project root on sys.path.
from lifecycle.providers.seventeentrack import webhook as st
from simulators.seventeentrack import pushes

STATUSES = [
    ("InfoReceived", "InfoReceived"),
    ("InTransit", "InTransit_PickedUp"),
    ("OutForDelivery", "OutForDelivery_Other"),
    ("Delivered", "Delivered_Other"),
]
SIDES = ("bare", "pg", "sqlite")
# Issue 11's targets: our req/s over bare Flask's, same run.
ACK_TARGETS = {"pg": 0.8, "sqlite": 0.7}


def signed_pushes(count: int) -> list[tuple[bytes, str]]:
    """`count` distinct pushes (different numbers and statuses) with their `sign` headers."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    items = []
    for i in range(count):
        status, sub = STATUSES[i % len(STATUSES)]
        payload = pushes.tracking_updated(f"BENCH{i:08d}", 3011, status, sub, start + timedelta(minutes=i))
        body = pushes.encode(payload)
        items.append((body, st.sign(body, API_KEY)))
    return items


def run_wrk(url: str, data: str, seconds: float, connections: int, threads: int) -> dict[str, float]:
    script = str(BENCH_DIR / "wrk_rotate.lua")
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    cmd += ["-s", script, f"{url}/webhooks/17track", "--", data]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True).stdout

    def number(pattern: str, default: float = 0.0) -> float:
        match = re.search(pattern, out)
        return float(match.group(1)) if match else default

    def millis(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            return float("nan")
        return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": number(r"Requests/sec:\s+([\d.]+)"),
        "requests": number(r"(\d+) requests in"),
        "non2xx": number(r"Non-2xx or 3xx responses: (\d+)"),
        "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
        "p50": millis("50%"),
        "p99": millis("99%"),
    }


def serve(
    h: Harness, name: str, env: dict[str, str] | None, args: argparse.Namespace, data: str
) -> tuple[str, dict]:
    """Start one side and warm it up: pool connections, writer/nudger threads, Python's caches."""
    url = h.serve(name, env) if env is not None else h.serve(name, command=bare_flask)
    return url, run_wrk(url, data, args.warmup, args.connections, args.threads)


def embedded_env(h: Harness) -> tuple[dict[str, str], Path]:
    """The service as a fresh checkout runs it: SQLite under VAR_DIR and the filesystem broker."""
    var_dir = h.out / "var-sqlite"
    env = h.env("", VAR_DIR=str(var_dir), BROKER_URL="filesystem://", LIMITER_URL="")
    h.run_checked([PYTHON, "manage.py", "db", "upgrade"], env, "migrate-sqlite")
    return env, var_dir / "lifecycle.sqlite3"


def inbox_counts(side: str, target: str) -> tuple[int, int]:
    """Rows stored and commits (the inbox writer stamps one received_at per commit)."""
    query = "SELECT count(*), count(DISTINCT received_at) FROM inbox"
    if side == "sqlite":
        with closing(sqlite3.connect(target)) as conn:
            return conn.execute(query).fetchone()
    with psycopg.connect(target.replace("+psycopg", "")) as conn:
        return conn.execute(query).fetchone()


def measure(args: argparse.Namespace) -> tuple[dict[str, list[dict]], dict[str, dict], dict, Load]:
    """Serve the three sides, load them alternately; returns runs, warm-ups, inbox counts and the
    load average before the first measured round (each run carries the one after it)."""
    h = Harness("ack")
    runs: dict[str, list[dict]] = {side: [] for side in SIDES}
    try:
        data = str(h.out / "ack.pushes")
        write_pushes(Path(data), signed_pushes(args.bodies))
        database_url = h.create_database()
        sqlite_env, sqlite_file = embedded_env(h)
        sides = {
            "bare": serve(h, "bare", None, args, data),
            "pg": serve(h, "ours-pg", h.env(database_url), args, data),
            "sqlite": serve(h, "ours-sqlite", sqlite_env, args, data),
        }
        # Alternate the sides so that drift on a shared machine hits all alike.
        started = load()
        for _ in range(args.rounds):
            for side, (url, _warm) in sides.items():
                result = run_wrk(url, data, args.duration, args.connections, args.threads)
                runs[side].append(result | {"load": load()})
        stored = {"pg": inbox_counts("pg", database_url), "sqlite": inbox_counts("sqlite", str(sqlite_file))}
    finally:
        h.close()
    return runs, {side: warm for side, (_url, warm) in sides.items()}, stored, started


def print_runs(args: argparse.Namespace, runs: dict[str, list[dict]]) -> None:
    print(
        f"\nwebhook ack: ours gunicorn {' '.join(SERVE_OPTS)}\n  bare Flask gunicorn {' '.join(BARE_OPTS)}\n"
        f"  wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration:g}s x {args.rounds} alternating rounds (after {args.warmup:g}s warm-up), "
        f"{args.bodies} distinct signed pushes; ours on PostgreSQL (pg) and on the embedded default (sqlite)"
    )
    print(f"{'':7} {'req/s':>10} {'requests':>10} {'non-2xx':>8} {'sock err':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for i in range(args.rounds):
        for side in SIDES:
            r = runs[side][i]
            print(
                f"{side:7} {r['rps']:>10.0f} {r['requests']:>10.0f} {r['non2xx']:>8.0f} "
                f"{r['socket_errors']:>8.0f} {r['p50']:>8.2f} {r['p99']:>8.2f}"
            )


def check_side(side: str, runs: list[dict], warm: dict, stored: tuple[int, int]) -> bool:
    """Every 200 must be a committed row (rows may exceed acks: wrk drops in-flight replies at the end)."""
    acked = sum(r["requests"] - r["non2xx"] for r in [*runs, warm])
    non2xx = sum(r["non2xx"] for r in [*runs, warm])
    rows, commits = stored
    durable = rows >= acked
    print(
        f"{side}: inbox rows stored {rows} (>= {acked:.0f} acked: {'ok' if durable else 'LOST ROWS'}), "
        f"in {commits} commits ({rows / max(commits, 1):.1f} rows per commit); {non2xx:.0f} non-2xx"
    )
    return non2xx == 0 and durable


def side_rows(side: str, runs: dict[str, list[dict]], started: Load) -> list[Row]:
    """Throughput ratio and p99 of one of our sides against bare Flask, medians over the rounds."""
    label = {"pg": "PostgreSQL", "sqlite": "embedded SQLite"}[side]
    during = (started, runs[side][-1]["load"])
    bare, ours = runs["bare"], runs[side]
    rps = [statistics.median(r["rps"] for r in rs) for rs in (ours, bare)]
    p99 = [statistics.median(r["p99"] for r in rs) for rs in (ours, bare)]
    per_round = ", ".join(f"{o['rps'] / b['rps']:.3f}" for b, o in zip(bare, ours, strict=True))
    print(f"{side}: median req/s ours {rps[0]:.0f}, bare {rps[1]:.0f}: ratio {rps[0] / rps[1]:.3f} "
          f"(per round: {per_round}); p99 ours {p99[0]:.1f} ms, bare {p99[1]:.1f} ms")  # fmt: skip
    return [
        row(f"ack req/s / bare Flask, {label}", rps[0], "req/s", during, reference=rps[1],
            check="ratio", op=">=", threshold=ACK_TARGETS[side], note=f"per round {per_round}"),
        row(f"ack p99 latency vs bare Flask, {label}", p99[0], "ms", during, reference=p99[1],
            check="ratio", op="<=", threshold=1.5),
    ]  # fmt: skip


def main() -> int:
    parser = arguments(__doc__, smoke="one round of 2 s per side, 1 s warm-up")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of measurement per side and round"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating bare/ours measurements; medians win"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load first")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--bodies", type=int, default=1000, help="distinct signed pushes to rotate")
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.warmup, args.rounds = 2.0, 1.0, 1
    if shutil.which("wrk") is None:
        print("wrk is not installed: `apt-get install -y wrk` (or build it from github.com/wg/wrk)")
        return 2

    runs, warm, stored, started = measure(args)
    print_runs(args, runs)
    ok = all([check_side(side, runs[side], warm[side], stored[side]) for side in ("pg", "sqlite")])
    emit([*side_rows("pg", runs, started), *side_rows("sqlite", runs, started)], args.json, "webhook_ack")
    print("result:", "PASS" if ok else "FAIL (non-2xx from ours, or acknowledged rows missing)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
