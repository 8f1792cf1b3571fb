"""Webhook acknowledgement throughput: our app vs a bare Flask endpoint, same gunicorn, same run.

    .venv/bin/python bench/webhook_ack.py [--smoke] [--duration 10] [--connections 64]

Both apps run under gunicorn with identical settings, `manage.py serve`'s own command line
(bench/_harness.py `gunicorn`), and are loaded by `wrk` with the same signed 17TRACK pushes.
Ours verifies the signature, parses the envelope and commits each body to the PostgreSQL inbox
before answering 200; the bare app only reads the body. The ratio ours/bare says how much of the
web tier's capacity the durable ack costs. No Celery worker runs: the stored rows simply stay
pending.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from _harness import API_KEY, BENCH_DIR, GUNICORN_OPTS, Harness, write_pushes

# `lifecycle` and `simulators` are importable because _harness put the project root on sys.path.
from lifecycle.providers import seventeentrack as st
from simulators.seventeentrack import pushes

STATUSES = [
    ("InfoReceived", "InfoReceived"),
    ("InTransit", "InTransit_PickedUp"),
    ("OutForDelivery", "OutForDelivery_Other"),
    ("Delivered", "Delivered_Other"),
]


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
    h: Harness, name: str, app: str, env: dict[str, str] | None, args: argparse.Namespace, data: str
) -> tuple[str, dict]:
    """Start one side and warm it up: pool connections, writer/nudger threads, Python's caches."""
    url = h.serve(name, app, env)
    return url, run_wrk(url, data, args.warmup, args.connections, args.threads)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    parser.add_argument("--smoke", action="store_true", help="one round of 2 s per side, 1 s warm-up")
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.warmup, args.rounds = 2.0, 1.0, 1
    if shutil.which("wrk") is None:
        print("wrk is not installed: `apt-get install -y wrk` (or build it from github.com/wg/wrk)")
        return 2

    h = Harness("ack")
    runs: dict[str, list[dict]] = {"bare": [], "ours": []}
    try:
        data = str(h.out / "ack.pushes")
        write_pushes(Path(data), signed_pushes(args.bodies))
        database_url = h.create_database()
        bare_url, _ = serve(h, "bare", "bench.bare_app:app", None, args, data)
        ours_url, ours_warm = serve(h, "ours", "lifecycle.wsgi:app", h.env(database_url), args, data)
        # Alternate the sides so that drift on a shared machine hits both alike.
        for _ in range(args.rounds):
            for name, url in (("bare", bare_url), ("ours", ours_url)):
                runs[name].append(run_wrk(url, data, args.duration, args.connections, args.threads))
        with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
            # The inbox writer stamps one received_at per commit: distinct values = commits.
            stored, commits = conn.execute(
                "SELECT count(*), count(DISTINCT received_at) FROM inbox"
            ).fetchone()
    finally:
        h.close()

    print(
        f"\nwebhook ack: gunicorn {' '.join(GUNICORN_OPTS)}, wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration:g}s x {args.rounds} alternating rounds (after {args.warmup:g}s warm-up), "
        f"{args.bodies} distinct signed pushes"
    )
    print(f"{'':6} {'req/s':>10} {'requests':>10} {'non-2xx':>8} {'sock err':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for i in range(args.rounds):
        for name in ("bare", "ours"):
            r = runs[name][i]
            print(
                f"{name:6} {r['rps']:>10.0f} {r['requests']:>10.0f} {r['non2xx']:>8.0f} "
                f"{r['socket_errors']:>8.0f} {r['p50']:>8.2f} {r['p99']:>8.2f}"
            )
    bare_rps = statistics.median(r["rps"] for r in runs["bare"])
    ours_rps = statistics.median(r["rps"] for r in runs["ours"])
    ratios = [o["rps"] / b["rps"] for b, o in zip(runs["bare"], runs["ours"], strict=True)]
    print(f"median req/s: bare {bare_rps:.0f}, ours {ours_rps:.0f}")
    print(f"ratio ours/bare: {ours_rps / bare_rps:.3f} (per round: {', '.join(f'{x:.3f}' for x in ratios)})")
    # Every 200 must be a committed row (rows may exceed acks: wrk drops in-flight replies at the end).
    acked = sum(r["requests"] - r["non2xx"] for r in [*runs["ours"], ours_warm])
    non2xx = sum(r["non2xx"] for r in [*runs["ours"], ours_warm])
    durable = stored >= acked
    print(
        f"inbox rows stored: {stored} (>= {acked:.0f} acknowledged: {'ok' if durable else 'LOST ROWS'}), "
        f"in {commits} commits ({stored / max(commits, 1):.1f} rows per commit)"
    )
    ok = non2xx == 0 and durable
    print("result:", "PASS" if ok else f"FAIL ({non2xx:.0f} non-2xx from ours, or acknowledged rows missing)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
