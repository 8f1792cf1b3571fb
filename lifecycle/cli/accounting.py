"""The accountant's commands: quota, plan, replay."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

import click

from lifecycle.cli.context import read_session, transaction

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from config.settings import Settings
    from lifecycle.accounting.ledger import Account


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--period", help="Calendar month YYYY-MM (default: this month).")
@click.option("--drift", is_flag=True, help="Ask 17TRACK's getquota and compare with our count.")
@click.option("--allow-overage/--forbid-overage", default=None, help="Let registrations go past the plan.")
def quota(as_json: bool, period: str | None, drift: bool, allow_overage: bool | None) -> None:
    """Quota used and remaining per bucket and provider, burn rate, forecast, cost, alerts."""
    from lifecycle.accounting.reports import quota_report
    from lifecycle.db import utcnow

    if drift:
        from lifecycle.cli.errors import require_17track_key

        require_17track_key()  # getquota without a key is 17TRACK's 401, not the reason
    if drift or allow_overage is not None:
        _change_quota_state(drift, allow_overage)
    with read_session() as session:
        report = quota_report(session, _accounts(session), utcnow(), period)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for provider, data in report["providers"].items():
        _print_provider(provider, data)


def _settings() -> Settings:
    from config.settings import get_settings

    return get_settings()


def _accounts(session: Session) -> dict[str, Account]:
    """The accounts in force, read on the command's own session (never a second one)."""
    from lifecycle.accounting import service

    return service.accounts_in_force(session, _settings())


def _change_quota_state(drift: bool, allow_overage: bool | None) -> None:
    """The two writes `quota` can make, in one short write transaction before the report is read."""
    from lifecycle import runtime
    from lifecycle.accounting import service
    from lifecycle.db import utcnow
    from lifecycle.operations import pause
    from lifecycle.providers.seventeentrack import drift as drift_check

    with read_session() as session:
        accounts = _accounts(session)
    with transaction() as session:
        if drift and "17track" in accounts:
            # First, while the transaction has not touched the database: refresh asks getquota before
            # it reads or writes, so SQLite's write lock is never held over the network call.
            drift_check.refresh(session, accounts["17track"], runtime.client("17track"), utcnow())
        if allow_overage is not None:
            service.set_overage_allowed(session, "17track", allow_overage)
            if allow_overage:
                pause.resume(session, "17track", "register")


def _print_provider(provider: str, data: dict) -> None:
    plan = data["plan"] or {}
    click.echo(
        f"{provider} — rule set {data['rule_set']}, plan {plan.get('name', 'none')}, period {data['period']}"
    )
    for bucket in data["buckets"]:
        limit = "∞" if bucket["limit"] is None else bucket["limit"]
        click.echo(f"  {bucket['bucket']:13} {bucket['period']:10} used {bucket['used']:>8} / {limit} "
                   f"{bucket['unit']}  amount {bucket['amount']} {data['currency']}")  # fmt: skip
    total = data["cost"]["month_total"]
    parts = [f"{unit} {amount}" for unit, amount in total["by_unit"].items()]
    if total["fee_plans"]:
        parts.insert(0, f"fee {total['fee']} ({', '.join(total['fee_plans'])})")
    click.echo(f"  this month: {' + '.join(parts)} = {total['total']} {data['currency']}"
               + (f" (known part {total['known_part']})" if total["total"] == "unknown" else ""))  # fmt: skip
    burn = data["burn_rate_per_day"]
    used = ", ".join(f"{u['used']} {unit} ({u['remaining']} left)" for unit, u in data["units"].items())
    click.echo(f"  used this month {used}; "
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
    from lifecycle.accounting import service
    from lifecycle.accounting.advice import advise, cargoai_break_even

    if set_plan:
        with transaction() as session:
            configured = service.accounts_in_force(session, _settings())[provider]
            service.set_plan(session, configured, set_plan, start.date() if start else None)
        click.echo(f"{provider} plan in force: {set_plan}" + (f" from {start:%Y-%m-%d}" if start else ""))
    with read_session() as session:
        accounts = _accounts(session)
        if "17track" not in accounts:
            click.echo("no 17TRACK rules loaded", err=True)
            sys.exit(1)
        advice = advise(session, accounts["17track"])
        cargo = accounts.get("cargoai")
        advice["cargoai_push_vs_pull"] = cargoai_break_even(session, cargo) if cargo else None
    if as_json:
        click.echo(json.dumps(advice, indent=2))
        return
    _print_advice(advice)


def _print_advice(advice: dict) -> None:
    months, average, need = advice["months_observed"], advice["average_monthly_units"], advice["annual_need"]
    click.echo(f"observed {months} month(s), {average} units/month: annual need {need:,} units")
    for item in advice["plans"]:
        projected, actual = item["average_x12"], item["actual_history"]
        click.echo(f"  {item['plan']:10} price {item['price'] or 'unknown':>6}: average×12 → cost "
                   f"{projected['cost'] or 'unknown'} (overage {projected['overage_units']}); "
                   f"last 12 months → {actual['cost'] or 'unknown'}")  # fmt: skip
    click.echo(f"cheapest: {advice['cheapest'] or 'none known'} — {advice['why']}")
    other = advice["alternative"]
    assumed = "the rule file assumes so" if other["rule_file_assumes_it"] else "the rule file assumes not"
    outcome = "the same plan"
    if other["saving"] is not None:
        outcome = f"{other['cheapest']} would do, saving {other['saving']} {advice['currency']} a year"
    click.echo(f"if {other['assumption']} ({assumed}): annual need {other['annual_need']:,} units, {outcome}")
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
    from lifecycle.accounting.rules import RulesError
    from lifecycle.cleanup.retention import replay_window
    from lifecycle.db import make_engine
    from lifecycle.inbox.replay import replay as rebuild
    from lifecycle.observability.progress import on_terminal, reported

    # Replay only reads the live database (it rebuilds into a scratch file): a read-only engine.
    live = make_engine(_settings().database_url, writes=False)
    try:
        with read_session() as session:
            accounts = _accounts(session)
            window = replay_window(session)
        with reported("replay", "rows", enabled=on_terminal(as_json)) as progress:
            rebuilt = rebuild(live, accounts, rule_set, window["purged_through_id"], progress=progress)
        report = {**rebuilt, "window": window}
    except RulesError as exc:
        raise click.BadParameter(str(exc), param_hint="--rules") from None
    finally:
        live.dispose()
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    for line in replay_lines(report):
        click.echo(line)


def replay_lines(report: dict) -> list[str]:
    """The replay report in words: a what-if says what it would cost more or less, and where."""
    live, replayed, currency = report["live"], report["replay"], report["currency"]
    # Said first, and only when it matters: older inbox bodies were purged by retention.
    window = [] if report["window"]["complete"] else [report["window"]["message"]]
    lines = [
        *window,
        f"replayed {report['inbox_rows']} inbox rows and {report['events']} billable events "
        f"under {report['rule_set']}",
        f"live ledger ({report['live_rule_set']}): {live['units']} units, {live['money']} {currency}; "
        f"replay ({report['rule_set']}): {replayed['units']} units, {replayed['money']} {currency}",
    ]
    if report["what_if"]:
        change = replayed["units"] - live["units"]
        amount = f"{abs(change)} unit(s) {'more' if change > 0 else 'less'} than" if change else "the same as"
        lines.append(f"under {report['rule_set']} this history would cost {amount} the live ledger "
                     f"under {report['live_rule_set']}")  # fmt: skip
        lines += [f"  {line}" for line in report["differences"][:50]]
        return lines
    lines += [f"  difference: {line}" for line in report["differences"][:50]]
    if not report["differences"]:
        lines.append("  no differences: the replay rebuilt the live ledger entry for entry")
    return lines
