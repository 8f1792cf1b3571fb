"""How long a command takes before it does anything, as a ratio to the interpreter's own start.

Measured side by side in one run: `python -c pass`, `manage.py --help`, and `manage.py shipments`
on an empty, migrated SQLite database (the embedded default). Each is run `--rounds` times
alternately and the medians are compared. Targets (issue "A newcomer's first hour"): `--help` at
most 0.3 s over the interpreter's start, `shipments` at most 0.6 s in all.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # for _report when imported from elsewhere
from _report import arguments, emit, load, row  # noqa: E402


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = arguments(__doc__, smoke="3 rounds")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    rounds = 3 if args.smoke else args.rounds
    with tempfile.TemporaryDirectory() as var_dir:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL")}
        env["VAR_DIR"] = var_dir
        subprocess.run([sys.executable, "manage.py", "db", "upgrade"], cwd=ROOT, env=env, check=True)
        sides = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "manage.py --help": [sys.executable, "manage.py", "--help"],
            "manage.py shipments": [sys.executable, "manage.py", "shipments"],
        }
        times: dict[str, list[float]] = {name: [] for name in sides}
        load_before = load()
        for _ in range(rounds):
            for name, command in sides.items():
                times[name].append(_timed(command, env))
        during = (load_before, load())
    median = {name: statistics.median(values) for name, values in times.items()}
    bare = median["python -c pass"]
    print(f"load average {during[0][0]:.2f} → {during[1][0]:.2f}; {rounds} rounds; medians:")
    print(f"{'command':22} {'seconds':>8} {'over python':>12} {'ratio':>7}  target")
    targets = {"manage.py --help": ("over", 0.3), "manage.py shipments": ("total", 0.6)}
    for name, value in median.items():
        kind, limit = targets.get(name, ("", 0.0))
        met = ""
        if kind:
            measured = value - bare if kind == "over" else value
            met = f"{'≤' if kind == 'total' else '+≤'}{limit} s {'met' if measured <= limit else 'MISSED'}"
        print(f"{name:22} {value:8.3f} {value - bare:12.3f} {value / bare:7.1f}  {met}")
    emit(
        [
            row("manage.py --help, over python's own start", median["manage.py --help"] - bare, "s",
                during, check="ours", op="<=", threshold=0.3),
            row("manage.py shipments (embedded SQLite)", median["manage.py shipments"], "s", during,
                reference=bare, check="ours", op="<=", threshold=0.6, note="reference: python -c pass"),
        ],
        args.json,
        "cli_startup",
    )  # fmt: skip


if __name__ == "__main__":
    main()
