"""The accountant at scale: `quota --json` over 1,000,000 ledger entries, and what charging costs.

    .venv/bin/python bench/quota_report.py [--smoke] [--entries 1000000] [--pushes 20000]

1. Charging through the real code: `ledger.charge(session, account, events)` in batches (one
   transaction each) of 17TRACK `register` events, plan "flagship": entries/s. These rows are then
   the reference for the bulk fill below.
2. Filling 1,000,000 entries through `charge()` would take far longer than the 5 minutes allowed
   (see the entries/s of step 1), so the ledger is filled by one `INSERT ... SELECT generate_series`
   that allocates buckets as the code does (each month's free quota first, then the plan's, then
   overage) and the matching `usage_totals` rows, incl. the zero totals `charge()` creates. The same
   fill is first run for step 1's events and must reproduce step 1's rows exactly (both tables).
3. With 1,000,000 entries spread over the last 12 months: `reports.quota_report()` in-process
   (median of 20 after a warm-up; target < 100 ms), the whole `manage.py quota --json` command
   (process start included), and a naive `SELECT bucket, sum(units) ... GROUP BY bucket` scan.
   Then again with as many shipments as registrations (60% delivered), as a real database has.
4. Inbox drain throughput (`inbox.service.drain(session_factory, 500, charger=...)`, in-process)
   of N signed TRACKING_UPDATED pushes inserted into the inbox, without a charger and with the
   "17track-per-cycle" rule set's charger (as `jobs.drain_inbox` builds it), a fresh database each,
   alternating for --rounds rounds. Target: events/s with / without >= 0.8.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import psycopg
from _harness import PROJECT_ROOT, PYTHON, Harness, plain_url
from e2e import make_pushes
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from config.settings import Settings
from lifecycle.accounting import ledger
from lifecycle.accounting import service as accountant
from lifecycle.accounting.reports import quota_report
from lifecycle.accounting.rules import BillableEvent, load_rules
from lifecycle.db import make_engine, utcnow
from lifecycle.inbox import service as inbox

PLAN = "flagship"
CARRIER = 3011
SPAN = timedelta(days=365)
REPORT_TARGET_MS = 100
DRAIN_TARGET = 0.8
CHARGE_BATCH = 2_500  # 5,000 does not fit one INSERT (see try_batch); 2,500 x 19 columns does


def accounts_for(rule_set: str) -> dict:
    settings = Settings(seventeentrack_plan=PLAN, seventeentrack_rules=rule_set, _env_file=None)  # type: ignore[call-arg]
    return accountant.build_accounts(settings, load_rules())


def event(i: int, start: datetime, step_us: int, prefix: str = "N") -> BillableEvent:
    when = start + timedelta(microseconds=i * step_us)
    return BillableEvent("17track", "register", f"17track:register:{prefix}{i}:{CARRIER}:1", when)


def timeline(count: int) -> tuple[datetime, int]:
    """`count` events evenly over the last 12 months: first instant and whole microseconds between two."""
    start = (datetime.now(UTC) - SPAN).replace(microsecond=0)
    return start, int(SPAN.total_seconds() * 1_000_000) // count


# -- 1. charging through the real code ------------------------------------------------------------
def charge_real(engine, account, count: int, start: datetime, step_us: int) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    for first in range(0, count, CHARGE_BATCH):
        events = [event(i, start, step_us) for i in range(first, min(count, first + CHARGE_BATCH))]
        with Session(engine) as session, session.begin():
            ledger.charge(session, account, events)
    return time.perf_counter() - started


def try_batch(engine, account, size: int) -> str:  # type: ignore[no-untyped-def]
    """One charge() of `size` events, rolled back: does a batch that large go through at all?"""
    start, step_us = timeline(size)
    with Session(engine) as session:
        session.begin()
        try:
            ledger.charge(session, account, [event(i, start, step_us, "TRY") for i in range(size)])
            return "ok"
        except DBAPIError as exc:
            return f"fails: {str(exc.orig).splitlines()[0]}"
        finally:
            session.rollback()


# -- 2. the bulk fill ------------------------------------------------------------------------------
LEDGER_COLUMNS = (
    "provider, rule_set, rule, event_kind, bucket, units, unit, amount, currency, shipment_id, "
    "idempotency_key, event_key, event_attrs, quantity, occurred_at, month, plan_period, note, "
    "corrects_id"
)
FILL_LEDGER = f"""
WITH ev AS (
    SELECT i, %(start)s::timestamp + (i::bigint * %(step_us)s) * interval '1 microsecond' AS occurred_at
    FROM generate_series(0, %(count)s - 1) AS i
), periods AS (
    SELECT i, occurred_at, to_char(occurred_at, 'YYYY-MM') AS month,
           to_char(date_trunc('year', occurred_at), 'YYYY-MM-DD') AS plan_period
    FROM ev
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY month ORDER BY i) AS nth_in_month FROM periods
), allocated AS (
    SELECT *, CASE
        WHEN nth_in_month <= %(free_limit)s THEN %(free)s
        WHEN count(*) FILTER (WHERE nth_in_month > %(free_limit)s)
             OVER (PARTITION BY plan_period ORDER BY i) <= %(plan_limit)s THEN %(plan)s
        ELSE %(overage)s END AS bucket
    FROM ranked
)
INSERT INTO ledger ({LEDGER_COLUMNS}, created_at)
SELECT %(provider)s, %(rule_set)s, %(rule)s, %(event_kind)s, bucket, 1, %(unit)s,
       CASE bucket WHEN %(free)s THEN %(free_price)s::numeric WHEN %(plan)s THEN %(plan_price)s::numeric
                   ELSE %(overage_price)s::numeric END,
       %(currency)s, NULL, %(prefix)s || i || %(suffix)s, %(prefix)s || i || %(suffix)s,
       '{{}}'::json, 1, occurred_at, month, plan_period, %(note)s,
       NULL, now() AT TIME ZONE 'UTC'
FROM allocated
"""
FILL_TOTALS = """
INSERT INTO usage_totals (provider, scope, period, key, units, entries, amount, unpriced_units)
SELECT provider, scope, period, key, sum(units), count(*), coalesce(sum(amount), 0),
       coalesce(sum(units) FILTER (WHERE amount IS NULL), 0)
FROM (
    SELECT provider, 'bucket' AS scope, CASE WHEN bucket = %(free)s THEN month ELSE plan_period END AS period,
           bucket || ':' || unit AS key, units, amount FROM ledger
    UNION ALL SELECT provider, 'month', month, unit, units, amount FROM ledger
    UNION ALL SELECT provider, 'day', to_char(occurred_at, 'YYYY-MM-DD'), unit, units, amount FROM ledger
    UNION ALL SELECT provider, 'rule', month, rule, units, amount FROM ledger
) AS parts
GROUP BY provider, scope, period, key;
-- charge() first creates every bucket total an event may draw from, at zero (_lock_bucket_totals).
INSERT INTO usage_totals (provider, scope, period, key, units, entries, amount, unpriced_units)
SELECT DISTINCT provider, 'bucket', v.period, v.key, 0, 0, 0, 0
FROM (SELECT DISTINCT provider, unit, month, plan_period FROM ledger) AS l,
     LATERAL (VALUES (l.month, %(free)s || ':' || l.unit), (l.plan_period, %(plan)s || ':' || l.unit),
                     (l.plan_period, %(overage)s || ':' || l.unit)) AS v(period, key)
ON CONFLICT DO NOTHING
"""


def fill_parameters(account, count: int, start: datetime, step_us: int) -> dict:  # type: ignore[no-untyped-def]
    """The constants of the fill, taken from the account so they cannot drift from the code."""
    if account.tz.key != "UTC":
        raise SystemExit("the bulk fill assumes ACCOUNT_TIMEZONE=UTC")
    sample = event(0, start, step_us)
    (item,) = account.rule_set.charges(sample)  # one rule, one unit for a plain registration
    assert item.units == 1 and item.key == sample.key, item
    free, plan, overage = account.buckets(start)
    assert (free.name, overage.name) == ("monthly_free", "overage"), account.buckets(start)

    def price(bucket) -> str | None:  # type: ignore[no-untyped-def]
        return None if bucket.unit_price is None else str(bucket.unit_price)

    return {
        "start": start.replace(tzinfo=None), "step_us": step_us, "count": count,
        "free": free.name, "plan": plan.name, "overage": overage.name,
        "free_limit": free.limit, "plan_limit": plan.limit,
        "free_price": price(free), "plan_price": price(plan), "overage_price": price(overage),
        "provider": account.provider, "rule_set": account.rule_set.name, "rule": item.rule,
        "event_kind": item.event_kind, "unit": account.rules.unit, "currency": account.rules.currency,
        "note": item.note or None, "prefix": "17track:register:N", "suffix": f":{CARRIER}:1",
    }  # fmt: skip


def bulk_fill(db: psycopg.Connection, params: dict) -> float:
    started = time.perf_counter()
    with db.transaction():
        db.execute(FILL_LEDGER, params)
        for statement in FILL_TOTALS.split(";"):
            db.execute(statement, params)
    return time.perf_counter() - started


COMPARE = {
    "ledger": f"SELECT {LEDGER_COLUMNS.replace('event_attrs', 'event_attrs::jsonb')} FROM {{table}}",
    "usage_totals": "SELECT * FROM {table}",
}


def check_fill(db: psycopg.Connection, params: dict) -> list[str]:
    """Keep what charge() wrote, fill the same events in bulk, and compare both tables row for row."""
    problems = []
    with db.transaction():
        for table in COMPARE:
            db.execute(f"CREATE TEMP TABLE real_{table} AS {COMPARE[table].format(table=table)}")
            db.execute(f"TRUNCATE {table} CASCADE")
    bulk_fill(db, params)
    for table, query in COMPARE.items():
        ours, real = query.format(table=table), f"SELECT * FROM real_{table}"
        only_real = db.execute(f"SELECT count(*) FROM ({real} EXCEPT ALL {ours}) AS d").fetchone()[0]
        only_bulk = db.execute(f"SELECT count(*) FROM ({ours} EXCEPT ALL {real}) AS d").fetchone()[0]
        rows = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if only_real or only_bulk:
            problems.append(
                f"{table}: {only_real} rows only from charge(), {only_bulk} only from the bulk fill"
            )
        else:
            print(f"  {table}: the bulk fill reproduces charge()'s {rows} rows exactly")
    for table in COMPARE:
        db.execute(f"DROP TABLE real_{table}")
        db.execute(f"TRUNCATE {table} CASCADE")
    return problems


FILL_SHIPMENTS = """
INSERT INTO shipments (provider, number, carrier, status, tracking, origin, registration_generation,
                       registered_at, created_at, updated_at)
SELECT '17track', 'N' || i, %(carrier)s,
       CASE WHEN i %% 5 < 3 THEN 'delivered' ELSE 'in_transit' END,
       CASE WHEN i %% 5 < 3 THEN 'stopped' ELSE 'tracking' END,
       'registered', 1, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
FROM generate_series(0, %(count)s - 1) AS i
"""


def fill_shipments(db: psycopg.Connection, count: int) -> str | None:
    """As many shipments as registrations behind the ledger, 60% delivered; None if the schema has
    a required column this fill does not know (the model is being changed)."""
    unknown = db.execute(
        "SELECT string_agg(column_name, ', ') FROM information_schema.columns WHERE table_name = 'shipments' "
        "AND is_nullable = 'NO' AND column_default IS NULL AND column_name NOT IN ('provider', 'number', "
        "'carrier', 'status', 'tracking', 'origin', 'registration_generation', 'created_at', 'updated_at')"
    ).fetchone()[0]
    if unknown:
        return f"shipments has required columns {unknown}: not filled"
    db.execute(FILL_SHIPMENTS, {"carrier": CARRIER, "count": count})
    db.execute("VACUUM ANALYZE shipments")
    return None


# -- 3. the report ---------------------------------------------------------------------------------
def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_report(engine, accounts: dict, runs: int) -> tuple[list[float], dict]:  # type: ignore[no-untyped-def]
    timings, report = [], {}
    for _ in range(runs + 1):  # the first is the warm-up
        started = time.perf_counter()
        with Session(engine) as session, session.begin():
            report = quota_report(session, accounts, utcnow())
        timings.append(time.perf_counter() - started)
    return timings[1:], report


def time_naive(db: psycopg.Connection, period: str, runs: int) -> list[float]:
    query = (
        "SELECT bucket, sum(units), sum(amount) FROM ledger "
        "WHERE provider = '17track' AND plan_period = %s GROUP BY bucket"
    )
    timings = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        db.execute(query, (period,)).fetchall()
        timings.append(time.perf_counter() - started)
    return timings[1:]


def time_command(args: list[str], env: dict[str, str], runs: int) -> tuple[list[float], str]:
    timings, output = [], ""
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=120
        )
        timings.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {done.stderr.decode()[-500:]}")
        output = done.stdout.decode()
    return timings, output


# -- 4. inbox drain with and without the per-cycle charger -------------------------------------------
def drain_once(h: Harness, items: list[tuple[bytes, str]], charger_account) -> dict:  # type: ignore[no-untyped-def]
    h.drop_database()
    database_url = h.create_database()
    received = datetime.now(UTC).replace(tzinfo=None)
    with psycopg.connect(plain_url(database_url), autocommit=True) as db:
        with db.cursor().copy("COPY inbox (provider, source, body, received_at, status) FROM STDIN") as copy:
            for body, _sign in items:  # the sign header is checked by the webhook, not stored
                copy.write_row(("17track", "push", body, received, "pending"))
        db.execute("VACUUM ANALYZE inbox")
        engine = make_engine(database_url)
        charger = None
        if charger_account is not None:
            thresholds = tuple(Settings(_env_file=None).alert_thresholds)  # type: ignore[call-arg]
            charger = lambda s, ev: accountant.charge(s, charger_account, ev, thresholds)  # noqa: E731
        try:
            started = time.perf_counter()
            report = inbox.drain(lambda: Session(engine, expire_on_commit=False), 500, charger=charger)
            seconds = time.perf_counter() - started
        finally:
            engine.dispose()
        pending = db.execute("SELECT count(*) FROM inbox WHERE status = 'pending'").fetchone()[0]
        entries, units = db.execute("SELECT count(*), coalesce(sum(units), 0) FROM ledger").fetchone()
    return {
        "seconds": seconds, "rate": len(items) / seconds, "processed": report.processed,
        "failed": report.failed, "pending": pending, "entries": entries, "units": units,
        "outcomes": report.outcomes,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000, help="ledger entries for the report")
    parser.add_argument("--check", type=int, default=20_000, help="entries charged through charge()")
    parser.add_argument("--pushes", type=int, default=20_000, help="inbox rows per drain run")
    parser.add_argument("--rounds", type=int, default=3, help="drain runs per side, alternating")
    parser.add_argument(
        "--smoke", action="store_true", help="20,000 entries, 5,000 checked, 2,000 pushes, 1 round"
    )
    args = parser.parse_args()
    if args.smoke:
        args.entries, args.check, args.pushes, args.rounds = 20_000, 5_000, 2_000, 1

    h = Harness("quota_report")
    problems: list[str] = []
    try:
        database_url = h.create_database()
        accounts = accounts_for("17track-official")
        account = accounts["17track"]
        print(f"quota_report: plan {PLAN}, rule set {account.rule_set.name}; logs in {h.out}")
        engine = make_engine(database_url)
        with psycopg.connect(plain_url(database_url), autocommit=True) as db:
            # 1. charging through the real code
            print(f"\n[charge] {args.check:,} register events over 12 months, {CHARGE_BATCH:,} per charge():")
            start, step_us = timeline(args.check)
            seconds = charge_real(engine, account, args.check, start, step_us)
            entries = db.execute("SELECT count(*) FROM ledger").fetchone()[0]
            charge_rate = entries / seconds
            print(f"  {entries:,} entries in {seconds:.1f}s: {charge_rate:,.0f} entries/s")
            print(f"  one charge() of 5,000 events: {try_batch(engine, account, 5_000)}")
            fill_minutes = args.entries / charge_rate / 60
            print(
                f"  at this rate {args.entries:,} entries would take {fill_minutes:.1f} min through charge()"
            )

            # 2. the bulk fill, checked against charge()
            print(f"\n[fill] INSERT ... SELECT generate_series, checked on the {args.check:,} entries above:")
            problems += check_fill(db, fill_parameters(account, args.check, start, step_us))
            start, step_us = timeline(args.entries)
            seconds = bulk_fill(db, fill_parameters(account, args.entries, start, step_us))
            db.execute("VACUUM ANALYZE ledger")
            db.execute("VACUUM ANALYZE usage_totals")
            entries, totals = (
                db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("ledger", "usage_totals")
            )
            spread = db.execute("SELECT min(month), max(month), count(DISTINCT month) FROM ledger").fetchone()
            print(
                f"  {entries:,} entries and {totals:,} usage_totals rows in {seconds:.1f}s, "
                f"months {spread[0]}..{spread[1]} ({spread[2]})"
            )

            # 3. the report
            report_times, report = time_report(engine, accounts, 20)
            provider = report["providers"]["17track"]
            now = utcnow()
            naive_times = time_naive(db, account.plan_period(now), 5)
            naive_rows = db.execute(
                "SELECT bucket, sum(units) FROM ledger WHERE provider = '17track' AND plan_period = %s "
                "GROUP BY bucket ORDER BY 1",
                (account.plan_period(now),),
            ).fetchall()
            month_units = db.execute(
                "SELECT count(*) FROM ledger WHERE month = %s", (account.month(now),)
            ).fetchone()[0]
            env = h.env(database_url, SEVENTEENTRACK_PLAN=PLAN)
            command_times, output = time_command(["quota", "--json"], env, 5)
            startup_times, _ = time_command(["--help"], env, 5)
            # The same report once the shipments behind those registrations exist (60% delivered).
            skipped = fill_shipments(db, args.entries)
            with_shipments = time_report(engine, accounts, 20)[0] if skipped is None else []
            command_shipments = time_command(["quota", "--json"], env, 5)[0] if skipped is None else []
        engine.dispose()
        command = json.loads(output)["providers"]["17track"]
        if provider["used"] != month_units or command["used"] != month_units:
            problems.append(f"report says {provider['used']} / {command['used']} used, ledger {month_units}")
        in_report = {
            b["bucket"]: b["used"] for b in provider["buckets"] if b["period"] == account.plan_period(now)
        }
        # The month's free bucket is per month, the scan per plan period: compare the plan's buckets.
        if any(in_report.get(bucket, 0) != units for bucket, units in naive_rows if bucket in in_report):
            problems.append(f"plan-period buckets: report {in_report}, ledger scan {dict(naive_rows)}")
        report_ms, naive_ms = median_ms(report_times), median_ms(naive_times)
        print(
            f"\n[report] over {entries:,} entries ({provider['used']:,} units this month, "
            f"{totals} usage_totals rows):"
        )
        print(
            f"  quota_report() in-process: median {report_ms:.1f} ms of 20 "
            f"(min {min(report_times) * 1000:.1f}, max {max(report_times) * 1000:.1f})  "
            f"target < {REPORT_TARGET_MS} ms: {'PASS' if report_ms < REPORT_TARGET_MS else 'FAIL'}"
        )
        print(
            f"  naive SELECT bucket, sum(units) ... GROUP BY bucket over the ledger: "
            f"median {naive_ms:.1f} ms "
            f"of 5: {naive_ms / report_ms:.1f}x the whole report"
        )
        print(
            f"  `manage.py quota --json`: median {median_ms(command_times):.0f} ms of 5, "
            "process start included "
            f"(`manage.py --help`: {median_ms(startup_times):.0f} ms)"
        )
        if with_shipments:
            ms = median_ms(with_shipments)
            print(
                f"  with {args.entries:,} shipments in the table too (60% delivered): quota_report() median "
                f"{ms:.1f} ms (min {min(with_shipments) * 1000:.1f}, max {max(with_shipments) * 1000:.1f})  "
                f"target < {REPORT_TARGET_MS} ms: {'PASS' if ms < REPORT_TARGET_MS else 'FAIL'}; "
                f"`quota --json` median {median_ms(command_shipments):.0f} ms"
            )
            if ms >= REPORT_TARGET_MS:
                problems.append(f"quota_report() with shipments: median {ms:.1f} ms >= {REPORT_TARGET_MS} ms")
        else:
            print(f"  with shipments: {skipped}")
        if report_ms >= REPORT_TARGET_MS:
            problems.append(f"quota_report() median {report_ms:.1f} ms >= {REPORT_TARGET_MS} ms")

        # 4. inbox drain with and without the per-cycle charger
        per_cycle = accounts_for("17track-per-cycle")["17track"]
        items, _expected = make_pushes("CYCLE", args.pushes)
        runs: dict[str, list[dict]] = {"none": [], "per-cycle": []}
        print(
            f"\n[drain] {args.pushes:,} pushes in the inbox, drain(batch 500) in-process, "
            "a fresh database each:"
        )
        for round_number in range(args.rounds):
            order = ("none", "per-cycle") if round_number % 2 == 0 else ("per-cycle", "none")
            for mode in order:
                r = drain_once(h, items, per_cycle if mode == "per-cycle" else None)
                runs[mode].append(r)
                print(
                    f"  round {round_number + 1} {mode:9}: {r['rate']:7,.0f} events/s ({r['seconds']:.1f}s), "
                    f"ledger {r['entries']:,} entries / {r['units']:,} units, outcomes {r['outcomes']}"
                )
                if r["pending"] or r["failed"] or r["processed"] != args.pushes:
                    problems.append(f"drain {mode}: {r['processed']} processed, {r['failed']} failed")
    finally:
        h.close()

    plain, charged = (statistics.median(r["rate"] for r in runs[m]) for m in ("none", "per-cycle"))
    ratio = charged / plain
    print(
        f"  median events/s: {plain:,.0f} without a charger, {charged:,.0f} with the per-cycle charger; "
        f"ratio {ratio:.3f}  (target >= {DRAIN_TARGET}: {'PASS' if ratio >= DRAIN_TARGET else 'FAIL'})"
    )
    if ratio < DRAIN_TARGET:
        problems.append(f"per-cycle charging keeps {ratio:.2f} of drain throughput, under {DRAIN_TARGET}")
    for problem in problems:
        print("  problem:", problem)
    print("summary:", "PASS" if not problems else f"FAIL ({len(problems)})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
