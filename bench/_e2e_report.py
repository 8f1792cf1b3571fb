"""What bench/e2e.py prints after each phase, and its rows for the runner's table (bench/_report.py)."""

from __future__ import annotations

import math

from _report import Row, row


def print_phase(name: str, r: dict, count: int) -> None:
    p, start = r["posting"], ("first post" if name == "live" else "worker ready")
    print(
        f"\n[{name}] posted {count} in {p['seconds']:.1f}s ({count / p['seconds']:.0f}/s), "
        f"{p['failed']} non-200; {r['queued']} signal messages queued in Redis after posting"
    )
    print(
        f"  processed all {count} in {r['seconds']:.1f}s from {start}: {r['rate']:.0f} events/s "
        f"(steady, first->last batch commit: {r['steady_rate']:.0f} events/s)"
    )
    print(f"  outcomes: {r['outcomes']}")
    print(f"  one more push posted while stoptracks were being sent was processed {r['probe']:.1f}s later")
    print(
        f"  stoptrack: first call {r['first_stoptrack']:.1f}s, all settled {r['stoptrack_seconds']:.1f}s "
        f"after {start}; first done {r['delivered_to_stoptrack']:.2f}s after the first delivered push applied"
    )
    if "worker_rss" in r:
        rss = r["worker_rss"]
        print(
            f"  worker RSS (main + pool, {rss['samples']} samples): {rss['first_total_kib'] / 1024:.0f} MiB "
            f"at ready, peak {rss['peak_total_kib'] / 1024:.0f} MiB; "
            f"largest process {rss['peak_process_kib'] / 1024:.0f} MiB"
        )


def figures(results: dict[str, dict], problems: int) -> list[Row]:
    """Issue 11's rows: rates, fairness (first stoptrack) and the drain's memory."""
    live, drain = results["live"], results["drain"]
    rss = drain["worker_rss"]
    mb = 1024 / 1e6  # KiB -> MB
    steady = (
        ""
        if math.isnan(drain["steady_rate"])
        else f"first->last batch commit {drain['steady_rate']:.0f} ev/s"
    )
    return [
        row("e2e events/s, pushes arriving live", live["rate"], "ev/s", live["load"],
            check="ours", op=">=", threshold=2000),
        row("drain events/s, workers alone", drain["rate"], "ev/s", drain["load"],
            check="ours", op=">=", threshold=4000, note=steady),
        *(
            row(f"first stoptrack after first delivered applied, {name}", r["delivered_to_stoptrack"], "s",
                r["load"], check="ours", op="<=", threshold=2)
            for name, r in results.items()
        ),
        row("worker peak RSS draining (main + pool)", rss["peak_total_kib"] * mb, "MB", drain["load"],
            reference=rss["first_total_kib"] * mb,
            note=f"reference: at worker ready; largest process {rss['peak_process_kib'] * mb:.0f} MB"),
        row("e2e state problems", problems, "", (live["load"][0], drain["load"][1]),
            check="ours", op="<=", threshold=0),
    ]  # fmt: skip
