"""CargoAi subscriptions nearing their 3-week end: renew or let lapse per policy, and report it.

The policy (CARGOAI_RENEW_SUBSCRIPTIONS) is decided per AWB by subscriptions.py; this job applies it
in bounded batches as a recorded job and, with renewal off, warns once per subscription that ends
within CARGOAI_ENDING_WARN_DAYS while its AWB is undelivered: tracking stops then, and renewing is
billed. A dry run counts what it would renew or expire.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from lifecycle.cleanup.runs import JobContext, batches, describe, raise_alert
from lifecycle.providers.cargoai import subscriptions as cargoai_subscriptions
from lifecycle.shipments.models import Shipment

JOB = "cargoai-subscriptions"
DONE = {"renew": "renewed", "expire": "expired"}


def renew_or_report(context: JobContext) -> None:
    """Warn about subscriptions ending soon, then renew or expire those due (per policy)."""
    renew = context.settings.cargoai_renew_subscriptions
    context.counts["policy"] = "renew" if renew else "let lapse"
    _report_ending(context, renew)
    _renew_or_expire(context, renew)


def _renew_or_expire(context: JobContext, renew: bool) -> None:
    # Bounded, locked batches (SKIP LOCKED): two runs at once never renew one AWB twice, and a
    # large account never holds every due AWB in one transaction.
    due = cargoai_subscriptions.due_for_renewal(context.now)
    for session, shipments in batches(context, due, Shipment.id):
        for shipment in shipments:
            action = cargoai_subscriptions.renewal_action(shipment, renew, context.now)
            if action is None:
                continue
            if context.dry_run:
                context.tally(DONE[action])
            elif action == "renew":
                context.add("renewed", cargoai_subscriptions.renew(session, shipment))
            else:
                cargoai_subscriptions.expire(shipment, context.now)
                context.add("expired")


def _report_ending(context: JobContext, renew: bool) -> None:
    horizon = context.now + timedelta(days=context.settings.cargoai_ending_warn_days)
    stmt = select(Shipment).where(
        Shipment.provider == cargoai_subscriptions.PROVIDER,
        Shipment.tracking_mode == "push",
        Shipment.tracking == "tracking",
        Shipment.status != "delivered",
        Shipment.subscription_expires_at > context.now,  # ended ones are expired below
        Shipment.subscription_expires_at < horizon,
    )
    for session, shipments in batches(context, stmt, Shipment.id, lock=False):
        for shipment in shipments:
            context.add("ending_soon")
            ends = shipment.subscription_expires_at
            context.example("ending", {**describe(shipment), "subscription_ends": ends.isoformat()})
            if renew or context.dry_run:
                continue
            message = (
                f"CargoAi subscription of AWB {shipment.number} ends {ends:%Y-%m-%d %H:%M} UTC and the "
                "AWB is not delivered: tracking stops then (CARGOAI_RENEW_SUBSCRIPTIONS=false; "
                "a renewal is billed)"
            )
            key = f"cargoai-ending:{shipment.number}:{shipment.subscriptions}"
            context.add("alerts_raised", raise_alert(session, JOB, key, message, describe(shipment)))
