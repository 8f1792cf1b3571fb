"""Replay: rebuild state and ledger from the inbox and the billable history into a scratch database.

The live ledger records each business event beside its charges, so the same history can be priced
again — under the same rule set (it must come out identical) or another one ("what would this
period have cost under 17track-per-cycle?"). Update cycles are re-derived by replaying the inbox.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from lifecycle import migrate
from lifecycle.accounting import ledger
from lifecycle.accounting.ledger import Account
from lifecycle.accounting.models import LedgerEntry
from lifecycle.accounting.reports import money_text
from lifecycle.accounting.rules import BillableEvent, RulesError
from lifecycle.db import make_engine
from lifecycle.inbox import service as inbox
from lifecycle.inbox.models import InboxEvent
from lifecycle.shipments.models import Shipment

CHUNK = 2000


def replay(
    live: Engine,
    accounts: dict[str, Account],
    rule_set: str | None = None,
    after_inbox_id: int = 0,
    progress: Callable[[int, int], object] = lambda done, total: None,
) -> dict[str, Any]:
    """Rebuild into a scratch database and compare. Inbox rows up to `after_inbox_id` had their
    bodies purged by retention, so they are left out (the caller says so to the user).
    `progress(rows applied, rows copied)` is called after each batch (the CLI's progress bar)."""
    account = accounts["17track"]
    if rule_set and rule_set not in account.rules.rule_sets:
        known = ", ".join(account.rules.rule_sets)
        raise RulesError(f"17track has no rule set {rule_set!r} (known: {known})")
    if rule_set:
        account = replace(account, rule_set=account.rules.rule_set(rule_set))
    with tempfile.TemporaryDirectory() as directory:
        scratch = make_engine(f"sqlite:///{Path(directory) / 'replay.sqlite3'}")
        migrate.upgrade(str(scratch.url))
        rows = _copy_history(live, scratch, after_inbox_id)
        cycles: list[BillableEvent] = []
        charger = (lambda _session, events: cycles.extend(events)) if _prices_cycles(account) else None
        _apply_inbox(scratch, charger, rows, progress)
        events = _recorded_events(live, account) + cycles
        with Session(scratch) as session, session.begin():
            ledger.charge(session, account, events)
        live_rule_set = accounts["17track"].rule_set.name
        report = _compare(live, scratch, account, same_rules=account.rule_set.name == live_rule_set)
        scratch.dispose()
    return {
        "rule_set": account.rule_set.name,
        "live_rule_set": live_rule_set,
        "what_if": account.rule_set.name != live_rule_set,
        "currency": account.rules.currency,
        "inbox_rows": rows,
        "events": len(events),
        **report,
    }


def _apply_inbox(scratch: Engine, charger: Any, rows: int, progress: Callable[[int, int], object]) -> None:
    applied = 0

    def batch_done(count: int) -> None:
        nonlocal applied
        applied += count
        progress(applied, rows)

    inbox.drain(lambda: Session(scratch), batch_size=500, charger=charger, on_batch=batch_done)


def _prices_cycles(account: Account) -> bool:
    from lifecycle.accounting.service import charges_update_cycles

    return charges_update_cycles(account)


def _copy_history(live: Engine, scratch: Engine, after_inbox_id: int) -> int:
    """Registered shipments (identity only) and every inbox row still holding its body, pending
    again, in arrival order."""
    with Session(live) as source, Session(scratch) as target, target.begin():
        for shipment in source.scalars(select(Shipment).where(Shipment.origin == "registered")):
            target.add(Shipment(provider=shipment.provider, number=shipment.number, carrier=shipment.carrier,
                                registration_generation=shipment.registration_generation, tracking="tracking",
                                registered_at=shipment.registered_at))  # fmt: skip
        copied, last_id = 0, after_inbox_id
        while True:
            stmt = select(InboxEvent).where(InboxEvent.id > last_id).order_by(InboxEvent.id).limit(CHUNK)
            batch = list(source.scalars(stmt))
            if not batch:
                return copied
            target.add_all(
                InboxEvent(
                    id=r.id, provider=r.provider, source=r.source, body=r.body, received_at=r.received_at
                )
                for r in batch
            )
            target.flush()
            copied += len(batch)
            last_id = batch[-1].id


def _recorded_events(live: Engine, account: Account) -> list[BillableEvent]:
    """One event per distinct event key in the live ledger (update cycles come from the inbox)."""
    events: dict[str, BillableEvent] = {}
    stmt = select(LedgerEntry).where(LedgerEntry.provider == account.provider).order_by(LedgerEntry.id)
    with Session(live) as session:
        for entry in session.scalars(stmt.execution_options(yield_per=CHUNK)):
            if entry.event_kind == "update_cycle" or entry.event_key in events:
                continue
            events[entry.event_key] = BillableEvent(
                entry.provider, entry.event_kind, entry.event_key, entry.occurred_at,
                shipment_id=None, quantity=entry.quantity, attrs=entry.event_attrs or {},
            )  # fmt: skip
    return list(events.values())


def _entries(engine: Engine, provider: str) -> dict[str, tuple[str, str, int, Decimal | None]]:
    """Each ledger entry by idempotency key: (rule, bucket, units, amount)."""
    entry = LedgerEntry
    stmt = select(entry.idempotency_key, entry.rule, entry.bucket, entry.units, entry.amount)
    with Session(engine) as session:
        rows = session.execute(stmt.where(LedgerEntry.provider == provider))
        return {key: (rule, bucket, units, amount) for key, rule, bucket, units, amount in rows}


def _summary(entries: dict[str, tuple[str, str, int, Decimal | None]]) -> dict[str, Any]:
    by_bucket: dict[str, int] = {}
    by_rule: dict[str, int] = {}
    for rule, bucket, units, _ in entries.values():
        by_bucket[bucket] = by_bucket.get(bucket, 0) + units
        by_rule[rule] = by_rule.get(rule, 0) + units
    money = sum((amount for _, _, _, amount in entries.values() if amount is not None), Decimal(0))
    return {
        "units": sum(by_bucket.values()),
        "by_bucket": by_bucket,
        "by_rule": by_rule,
        "money": money_text(money),
        "entries": len(entries),
    }


def _compare(live: Engine, scratch: Engine, account: Account, same_rules: bool) -> dict[str, Any]:
    """Same rule set: every entry must match, key by key. Another rule set: what each rule and bucket
    would charge differently, since the keys of rules the live set lacks cannot match anything."""
    theirs, ours = _entries(live, account.provider), _entries(scratch, account.provider)
    live_summary, replay_summary = _summary(theirs), _summary(ours)
    differences: list[str] = []
    if same_rules:
        for key in sorted(set(theirs) | set(ours)):
            if theirs.get(key) != ours.get(key):
                differences.append(f"{key}: live {theirs.get(key)} replay {ours.get(key)}")
    else:
        for what in ("by_rule", "by_bucket"):
            differences += _unit_differences(what, live_summary[what], replay_summary[what])
    return {"live": live_summary, "replay": replay_summary, "differences": differences}


def _unit_differences(what: str, live: dict[str, int], replayed: dict[str, int]) -> list[str]:
    label = "rule" if what == "by_rule" else "bucket"
    lines = []
    for name in sorted(set(live) | set(replayed)):
        before, after = live.get(name, 0), replayed.get(name, 0)
        if before != after:
            lines.append(f"{label} {name}: live {before} units, replay {after} units ({after - before:+d})")
    return lines
