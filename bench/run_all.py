"""Every comparison of issue 11's targets table, one after the other, as one table.

    .venv/bin/python bench/run_all.py [--smoke] [--only webhook_ack,e2e]

Runs each bench script (bench/<name>.py) as its own process with `--json`, so one that crashes does
not take the others with it, and its own output streams as it goes. Then prints one table (metric,
ours, reference, ratio, target, met?, load average before and after the measurement) and writes
the same, with each script's exit code, duration and the load average around it, to
bench/out/bench-<timestamp>.json and bench/out/latest.json. Needs PostgreSQL, Redis and wrk; says
which is missing and exits 2 otherwise. Exit 1 if a script failed (a crash or a correctness check),
not for a missed target: the figures are measurements, not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import redis
from _report import as_dicts, failed_row, from_dicts, load, table

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
OUT = BENCH_DIR / "out"
# Same as bench/_harness.py (not imported here: the runner must start even if the product does not).
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/3"
# In the order of the table; each name is bench/<name>.py.
BENCHES = ("webhook_ack", "e2e", "drain_memory", "registration", "import_memory", "cli_startup")


def missing_services() -> list[str]:
    """What the benches need and cannot find, each with how to get it."""
    problems = []
    if shutil.which("wrk") is None:
        problems.append("wrk is not on PATH: `apt-get install -y wrk` (or build it from github.com/wg/wrk)")
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
    except psycopg.Error as exc:
        problems.append(
            f"PostgreSQL is not reachable at 127.0.0.1:5432 as user postgres ({str(exc).splitlines()[0]}): "
            "start it (e.g. `service postgresql start`, or `docker run -d -p 5432:5432 "
            "-e POSTGRES_HOST_AUTH_METHOD=trust postgres:16`)"
        )
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=3).ping()
    except redis.RedisError as exc:
        problems.append(
            f"Redis is not reachable at 127.0.0.1:6379 ({exc}): start it (e.g. `service redis-server "
            "start`, or `docker run -d -p 6379:6379 redis:7`)"
        )
    return problems


def run_bench(name: str, smoke: bool, json_path: Path) -> dict:
    """Run bench/<name>.py; returns what the runner records about it, its rows included."""
    json_path.unlink(missing_ok=True)
    command = [sys.executable, str(BENCH_DIR / f"{name}.py"), "--json", str(json_path)]
    command += ["--smoke"] if smoke else []
    print(f"\n==== {name}: {' '.join(command[1:])}", flush=True)
    before, started = load(), time.monotonic()
    code = subprocess.run(command, cwd=PROJECT_ROOT).returncode
    record = {"bench": name, "exit": code, "seconds": round(time.monotonic() - started, 1)}
    record |= {"load_before": before, "load_after": load()}
    if json_path.exists():
        rows = from_dicts(json.loads(json_path.read_text()))
        json_path.unlink()
    else:
        rows = [failed_row(f"{name}: no figures", f"exit {code}; its output is above", name)]
    record["rows"] = rows
    return record


def git_commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    return result.stdout.strip()


def write_report(records: list[dict], smoke: bool, started: str) -> Path:
    OUT.mkdir(exist_ok=True)
    report = {
        "started": started,
        "smoke": smoke,
        "commit": git_commit(),
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "benches": [{k: v for k, v in r.items() if k != "rows"} for r in records],
        "rows": as_dicts([row for r in records for row in r["rows"]]),
    }
    path = OUT / f"bench-{'smoke-' if smoke else ''}{started.replace(':', '')}.json"
    text = json.dumps(report, indent=2)
    path.write_text(text)
    (OUT / "latest.json").write_text(text)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="each script's tiny sizes (CI)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(BENCHES)}")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",")] if args.only else list(BENCHES)
    unknown = set(names) - set(BENCHES)
    if unknown:
        parser.error(f"unknown bench(es): {', '.join(sorted(unknown))}")
    problems = missing_services()
    if problems:
        print("make bench cannot run:", *(f"  - {p}" for p in problems), sep="\n", file=sys.stderr)
        return 2

    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    OUT.mkdir(exist_ok=True)
    records = [run_bench(name, args.smoke, OUT / f".{name}-rows.json") for name in names]
    path = write_report(records, args.smoke, started)
    print(f"\n==== {'smoke ' if args.smoke else ''}benchmark, {started}, {os.cpu_count()} CPUs")
    print(table([row for r in records for row in r["rows"]]))
    failed = [f"{r['bench']} (exit {r['exit']})" for r in records if r["exit"] != 0]
    print(f"\nwritten to {path.relative_to(PROJECT_ROOT)} and bench/out/latest.json")
    if failed:
        print(f"FAILED: {', '.join(failed)}: see its output above")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
