"""The accountant's commands: quota, plan, replay."""

from __future__ import annotations

import json
import sys

import click

from lifecycle.cli.context import app, transaction


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--period", help="Calendar month YYYY-MM (default: this month).")
@click.option("--drift", is_flag=True, help="Ask 17TRACK's getquota and compare with our count.")
@click.option("--allow-overage/--forbid-overage", default=None, help="Let registrations go past the plan.")
def quota(as_json: bool, period: str | None, drift: bool, allow_overage: bool | None) -> None:
    """Quota used and remaining per bucket and provider, burn rate, forecast, cost, alerts."""
    from lifecycle import runtime
    from lifecycle.accounting import drift as drift_check
    from lifecycle.accounting import service
    from lifecycle.accounting.reports import quota_report
    from lifecycle.db import utcnow
    from lifecycle.operations import pause

    with transaction() as session:
        accounts = runtime.accounts_in_force()
        if allow_overage is not None:
            service.set_overage_allowed(session, "17track", allow_overage)
            if allow_overage:
                pause.resume(session, "17track", "register")
        if drift and "17track" in accounts:
            drift_check.refresh(session, accounts["17track"], runtime.client17(), utcnow())
        report = quota_report(session, accounts, utcnow(), period)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for provider, data in report["providers"].items():
        _print_provider(provider, data)


def _print_provider(provider: str, data: dict) -> None:
    plan = data["plan"] or {}
    click.echo(
        f"{provider} — rule set {data['rule_set']}, plan {plan.get('name', 'none')}, period {data['period']}"
    )
    for bucket in data["buckets"]:
        limit = "∞" if bucket["limit"] is None else bucket["limit"]
        click.echo(f"  {bucket['bucket']:13} {bucket['period']:10} used {bucket['used']:>8} / {limit}"
                   f"  amount {bucket['amount']} {data['currency']}")  # fmt: skip
    burn = data["burn_rate_per_day"]
    click.echo(f"  used this month {data['used']} {data['unit']}, remaining {data['remaining']}; "
               f"burn {burn['7d']}/day (7d), {burn['30d']}/day (30d); "
               f"runs out {data['forecast_exhausted_on'] or 'not at this rate'}")  # fmt: skip
    for driver in data["top_cost_drivers"]:
        click.echo(f"  driver {driver['rule']}: {driver['units']} units over {driver['events']} events")
    for alert in data["alerts"]:
        click.echo(f"  ALERT {alert['message']}")
    if data["drift"]:
        d = data["drift"]
        click.echo(f"  drift: 17TRACK counts {d['theirs']}, we count {d['ours']} ({d['difference']:+d})")
        for line in d["explanations"]:
            click.echo(f"    - {line}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--set", "set_plan", help="Record the plan in force, e.g. basic (overrides the environment).")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), help="With --set: first day of the plan period.")
@click.option("--provider", default="17track", type=click.Choice(["17track", "cargoai"]), show_default=True)
def plan(as_json: bool, set_plan: str | None, start, provider: str) -> None:  # type: ignore[no-untyped-def]
    """The cheapest 17TRACK plan for the observed volume, and what the service saved."""
    from lifecycle import runtime
    from lifecycle.accounting import service
    from lifecycle.accounting.advice import advise, cargoai_break_even

    if set_plan:
        with transaction() as session:
            service.set_plan(session, runtime.accounts()[provider], set_plan, start.date() if start else None)
        click.echo(f"{provider} plan in force: {set_plan}" + (f" from {start:%Y-%m-%d}" if start else ""))
    with transaction() as session:
        account = runtime.account("17track")
        if account is None:
            click.echo("no 17TRACK rules loaded", err=True)
            sys.exit(1)
        advice = advise(session, account)
        cargo = runtime.account("cargoai")
        advice["cargoai_push_vs_pull"] = cargoai_break_even(session, cargo) if cargo else None
    if as_json:
        click.echo(json.dumps(advice, indent=2))
        return
    click.echo(
        f"observed {advice['months_observed']} month(s), {advice['average_monthly_units']} units/month"
    )
    for item in advice["plans"]:
        projected, actual = item["average_x12"], item["actual_history"]
        click.echo(f"  {item['plan']:10} price {item['price'] or 'unknown':>6}: average×12 → cost "
                   f"{projected['cost'] or 'unknown'} (overage {projected['overage_units']}); history → "
                   f"{actual['cost'] or 'unknown'}")  # fmt: skip
    click.echo(f"cheapest: {advice['cheapest'] or 'none known'} — {advice['why']}")
    for name, saved in advice["savings"]["quota_saved"].items():
        click.echo(f"  saved under {name}: {saved['units']} units ({saved['why']})")
    cargo = advice["cargoai_push_vs_pull"]
    if cargo:
        awbs, updates = cargo["awbs_observed"], cargo["average_updates_per_awb"]
        break_even = cargo["break_even_updates"] or "unknown"
        click.echo(f"CargoAi: {awbs} AWB(s), {updates} updates each; push wins above {break_even} updates")
        if cargo.get("why"):
            click.echo(f"  ({cargo['why']})")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--rules", "rule_set", help="Price the history under another rule set (what-if).")
def replay(as_json: bool, rule_set: str | None) -> None:
    """Rebuild state and ledger from the inbox and operations history; report differences."""
    from lifecycle import runtime
    from lifecycle.accounting.replay import replay as rebuild
    from lifecycle.extensions import db

    with app().app_context():
        report = rebuild(db.engine, runtime.accounts_in_force(), rule_set)  # type: ignore[arg-type]
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(f"replayed {report['inbox_rows']} inbox rows and {report['events']} billable events "
               f"under {report['rule_set']}")  # fmt: skip
    click.echo(f"live ledger: {report['live']['units']} units; replay: {report['replay']['units']} units")
    for line in report["differences"][:50]:
        click.echo(f"  difference: {line}")
    if not report["differences"]:
        click.echo("  no differences")

