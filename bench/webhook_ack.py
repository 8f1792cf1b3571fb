"""Webhook acknowledgement throughput: our app vs a bare Flask endpoint, same gunicorn, same run.

    .venv/bin/python bench/webhook_ack.py [--smoke] [--duration 10] [--connections 64]

Both apps run under gunicorn with identical settings (bench/_harness.py GUNICORN_OPTS) and are
loaded by `wrk` with the same signed 17TRACK pushes. Ours verifies the signature, parses the
envelope and commits each body to the PostgreSQL inbox before answering 200; the bare app only
reads the body. The ratio ours/bare says how much of the web tier's capacity the durable ack costs.
No Celery worker runs: the stored rows simply stay pending.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
from _harness import API_KEY, GUNICORN_OPTS, Harness, free_port, gunicorn

# `lifecycle` is importable because _harness put the project root on sys.path.
from lifecycle.providers import pushes
from lifecycle.providers import seventeentrack as st

STATUSES = [
    ("InfoReceived", "InfoReceived"),
    ("InTransit", "InTransit_PickedUp"),
    ("OutForDelivery", "OutForDelivery_Other"),
    ("Delivered", "Delivered_Other"),
]


def lua_script(count: int) -> str:
    """A wrk script rotating through `count` distinct pre-signed pushes (wrk has no sha256)."""
    start = datetime(2025, 1, 1, tzinfo=UTC)
    bodies, signs = [], []
    for i in range(count):
        status, sub = STATUSES[i % len(STATUSES)]
        payload = pushes.tracking_updated(f"BENCH{i:08d}", 3011, status, sub, start + timedelta(minutes=i))
        body = pushes.encode(payload)
        assert b"]==]" not in body  # it goes into a Lua long string
        bodies.append(f"[==[{body.decode()}]==]")
        signs.append(f'"{st.sign(body, API_KEY)}"')
    return f"""
local bodies = {{ {",".join(bodies)} }}
local signs = {{ {",".join(signs)} }}
local n = #bodies
local i = 0
local threads = 0
function setup(thread)
  -- each wrk thread has its own Lua state: start them at different points of the rotation
  thread:set("offset", threads * 389)
  threads = threads + 1
end
function init(args)
  i = (offset or 0) % n
end
function request()
  i = i % n + 1
  return wrk.format("POST", "/webhooks/17track",
    {{["Content-Type"] = "application/json", ["sign"] = signs[i]}}, bodies[i])
end
"""


def run_wrk(url: str, script: str, seconds: float, connections: int, threads: int) -> dict[str, float]:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        script,
        f"{url}/webhooks/17track",
    ]
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


def measure(
    h: Harness, name: str, app: str, env: dict[str, str] | None, args: argparse.Namespace, script: str
) -> dict[str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    h.start(name, gunicorn(app, port), env)
    try:
        h.wait_healthy(name, url)
        # Warm up first: pool connections, the inbox writer and nudger threads, Python's caches.
        warm = run_wrk(url, script, args.warmup, args.connections, args.threads)
        result = run_wrk(url, script, args.duration, args.connections, args.threads)
        result["warmup_requests"] = warm["requests"]
        result["warmup_non2xx"] = warm["non2xx"]
        return result
    finally:
        h.stop(name)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of measurement per side")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load first")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--bodies", type=int, default=1000, help="distinct signed pushes to rotate")
    parser.add_argument("--smoke", action="store_true", help="2 s per side, 1 s warm-up")
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.warmup = 2.0, 1.0
    if shutil.which("wrk") is None:
        print("wrk is not installed: `apt-get install -y wrk` (or build it from github.com/wg/wrk)")
        return 2

    h = Harness("ack")
    try:
        script = h.out / "pushes.lua"
        script.write_text(lua_script(args.bodies))
        database_url = h.create_database()
        bare = measure(h, "bare", "bench.bare_app:app", None, args, str(script))
        ours = measure(h, "ours", "lifecycle.wsgi:app", h.env(database_url), args, str(script))
        with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
            stored = conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
    finally:
        h.close()

    acked = ours["requests"] + ours["warmup_requests"] - ours["non2xx"] - ours["warmup_non2xx"]
    print(
        f"\nwebhook ack: gunicorn {' '.join(GUNICORN_OPTS)}, wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration:g}s (after {args.warmup:g}s warm-up), {args.bodies} distinct signed pushes"
    )
    print(f"{'':6} {'req/s':>10} {'requests':>10} {'non-2xx':>8} {'sock err':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, r in (("bare", bare), ("ours", ours)):
        print(
            f"{name:6} {r['rps']:>10.0f} {r['requests']:>10.0f} {r['non2xx']:>8.0f} "
            f"{r['socket_errors']:>8.0f} {r['p50']:>8.2f} {r['p99']:>8.2f}"
        )
    ratio = ours["rps"] / bare["rps"] if bare["rps"] else float("nan")
    print(f"ratio ours/bare: {ratio:.3f}")
    # Every 200 must be a committed row (rows may exceed acks: wrk drops in-flight replies at the end).
    durable = stored >= acked
    print(f"inbox rows stored: {stored} (>= {acked:.0f} acknowledged: {'ok' if durable else 'LOST ROWS'})")
    ok = ours["non2xx"] == 0 and ours["warmup_non2xx"] == 0 and durable
    print("result:", "PASS" if ok else "FAIL (non-2xx from ours, or acknowledged rows missing)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
