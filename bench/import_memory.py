"""CSV import: wall time, rows/s and peak memory of `manage.py import` at two file sizes.

    .venv/bin/python bench/import_memory.py [--smoke] [--rows 1000000] [--small 10000]

Each size runs on a fresh PostgreSQL database (migrated; no worker, no simulator: the import only
queues registrations). The CSV (number,carrier,lang,tag; numbers RR{i:09d}CN) is generated into a
temporary directory. The importer's peak RSS is its own ru_maxrss (os.wait4 on its pid), and its
RSS is sampled from /proc while it runs, against its progress (rows queued so far), to show that
memory stays flat along the file too. A header-only file gives the fixed cost (interpreter, imports).
Targets (issue 11): >= 20,000 rows/s and peak RSS < 150 MB for the large file, i.e. flat: large /
small ~ 1. --smoke: 1,000 vs 200 rows.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from _harness import PYTHON, Harness, plain_url
from _report import arguments, emit, load, row

CARRIER = 3011


def write_csv(path: Path, rows: int) -> None:
    with open(path, "w") as out:
        out.write("number,carrier,lang,tag\n")
        for start in range(0, rows, 10_000):
            out.write(
                "".join(f"RR{i:09d}CN,{CARRIER},,bench\n" for i in range(start, min(rows, start + 10_000)))
            )


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_import(h: Harness, rows: int, tmp: Path, timeout: float) -> dict:
    """Import `rows` rows into a fresh database; returns timings, memory and what got queued."""
    h.drop_database()
    database_url = h.create_database()
    csv_path = tmp / f"numbers-{rows}.csv"
    write_csv(csv_path, rows)
    name = f"import-{rows}"
    samples: list[tuple[float, int, int]] = []  # (seconds, rows queued so far, RSS KiB)
    with psycopg.connect(plain_url(database_url), autocommit=True) as db:
        started = time.monotonic()
        h.start(name, [PYTHON, "manage.py", "import", str(csv_path)], h.env(database_url))
        proc = h.procs[name]
        status, usage, next_probe = None, None, 0.0
        while time.monotonic() - started < timeout:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                h.procs.pop(name)
                break
            now = time.monotonic() - started
            if now >= next_probe:  # progress from the operations' id sequence: cheap on a big table
                done = db.execute("SELECT coalesce(max(id), 0) FROM operations").fetchone()[0]
                samples.append((now, done, rss_kib(proc.pid)))
                next_probe = now + max(1.0, timeout / 2000)
            time.sleep(0.05)
        seconds = time.monotonic() - started
        if name in h.procs:  # timed out: report how far it got, then stop it
            done = db.execute("SELECT coalesce(max(id), 0) FROM operations").fetchone()[0]
            samples.append((seconds, done, rss_kib(proc.pid)))
            h.stop(name)
            return {"rows": rows, "timed_out": True, "seconds": seconds, "queued": done, "samples": samples}
        queued = db.execute("SELECT count(*) FROM operations WHERE kind = 'register'").fetchone()[0]
        shipments = db.execute("SELECT count(*) FROM shipments").fetchone()[0]
    csv_path.unlink()
    summary = (h.out / f"{name}.log").read_text().strip().splitlines()
    return {
        "rows": rows,
        "timed_out": False,
        "exit": proc.returncode,
        "seconds": seconds,
        "peak_kib": usage.ru_maxrss,  # Linux: KiB, this child (and its waited-for children) only
        "queued": queued,
        "shipments": shipments,
        "summary": summary[-1] if summary else "",
        "samples": samples,
    }


def along_the_file(result: dict) -> str:
    """RSS when 10%, 50% and 90% of the rows were queued."""
    parts = []
    for share in (0.1, 0.5, 0.9):
        hit = next((s for s in result["samples"] if s[1] >= share * result["rows"] and s[2]), None)
        if hit:
            parts.append(f"{share:.0%} of rows: {hit[2] / 1024:.0f} MiB")
    return ", ".join(parts)


def main() -> int:
    parser = arguments(__doc__, smoke="1,000 vs 200 rows")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the large file")
    parser.add_argument("--small", type=int, default=10_000, help="rows in the small file")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds allowed for the large import")
    args = parser.parse_args()
    large, small = (1_000, 200) if args.smoke else (args.rows, args.small)

    h = Harness("import_memory")
    results: dict[str, dict] = {}
    try:
        print(
            f"import_memory: `manage.py import` of {small:,} and {large:,} rows, a fresh database each; "
            f"logs in {h.out}"
        )
        with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
            for label, rows, timeout in (
                ("baseline", 0, 300),
                ("small", small, 600),
                ("large", large, args.timeout),
            ):
                load_before = load()
                results[label] = r = run_import(h, rows, Path(tmp), timeout)
                r["load"] = (load_before, load())
                if r["timed_out"]:
                    rate = r["queued"] / r["seconds"]
                    print(
                        f"\n[{label}] TIMED OUT after {r['seconds']:.0f}s: {r['queued']:,} of {rows:,} rows "
                        f"queued ({rate:.0f} rows/s; the whole file would take ~{rows / rate / 60:.0f} min)"
                    )
                    print(f"  RSS along the file: {along_the_file(r)}")
                    return 1
                rate = f"{rows / r['seconds']:.0f} rows/s" if rows else "-"
                print(
                    f"\n[{label}] {rows:,} rows in {r['seconds']:.1f}s ({rate}), exit {r['exit']}; "
                    f"peak RSS {r['peak_kib'] / 1024:.1f} MiB\n  importer said: {r['summary']}"
                )
                if rows >= 100_000:
                    print(f"  RSS along the file: {along_the_file(r)}")
    finally:
        h.close()

    problems = [
        f"{label}: exit {r['exit']}, {r['queued']} register operations, {r['shipments']} shipments; "
        f"want {r['rows']}"
        for label, r in results.items()
        if r["exit"] != 0 or r["queued"] != r["rows"] or r["shipments"] != r["rows"]
    ]
    big, little, base = (results[k]["peak_kib"] / 1024 for k in ("large", "small", "baseline"))
    print(
        f"\npeak RSS: {large:,} rows {big:.1f} MiB, {small:,} rows {little:.1f} MiB, "
        f"header only {base:.1f} MiB"
    )
    print(
        f"  ratio {large:,} / {small:,} rows: {big / little:.3f}  "
        "(target ~1: memory does not grow with the file)"
    )
    print(f"  above the header-only baseline: {big - base:.1f} MiB vs {little - base:.1f} MiB")
    for problem in problems:
        print("  problem:", problem)
    r, mb = results["large"], 1024 / 1e6  # KiB -> MB
    emit(
        [
            row(f"CSV import rows/s, {large:,} rows", large / r["seconds"], "rows/s", r["load"],
                check="ours", op=">=", threshold=20_000),
            row(f"CSV import peak RSS, {large:,} rows", r["peak_kib"] * mb, "MB", r["load"],
                reference=results["small"]["peak_kib"] * mb, check="ours", op="<", threshold=150,
                note=f"reference: {small:,} rows; header only {results['baseline']['peak_kib'] * mb:.0f} MB"),
        ],
        args.json,
        "import_memory",
    )  # fmt: skip
    print("checks:", "ok" if not problems else "FAIL")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
