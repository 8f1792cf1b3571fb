"""Thin Celery tasks: each calls one job function. Names are stable; queued messages use them."""

from celery import shared_task

from lifecycle import jobs


@shared_task(name="lifecycle.inbox.drain")
def drain_inbox() -> dict:
    return jobs.drain_inbox()


@shared_task(name="lifecycle.operations.flush")
def flush_operations() -> dict:
    return jobs.flush_operations()


@shared_task(name="lifecycle.maintenance.sweep")
def sweep() -> dict:
    return jobs.sweep()


@shared_task(name="lifecycle.shipments.sync_silent")
def sync_silent() -> dict:
    return jobs.sync_silent()


@shared_task(name="lifecycle.cargoai.poll")
def cargoai_poll() -> dict:
    return jobs.cargoai_poll()


@shared_task(name="lifecycle.cargoai.renew")
def cargoai_renew() -> dict:
    return jobs.cargoai_renew()
