"""Thin Celery tasks: each calls one job function. Names are stable; queued messages use them."""

from celery import shared_task

from lifecycle import jobs


@shared_task(name="lifecycle.inbox.drain")
def drain_inbox() -> dict:
    return jobs.drain_inbox()


@shared_task(name="lifecycle.operations.flush")
def flush_operations() -> dict:
    return jobs.flush_operations()


@shared_task(name="lifecycle.outbound.send")
def send_outbound() -> dict:
    from lifecycle.outbound import job

    return job.send()


@shared_task(name="lifecycle.maintenance.sweep")
def sweep() -> dict:
    return jobs.sweep()


@shared_task(name="lifecycle.shipments.sync_silent")
def sync_silent() -> dict:
    from lifecycle.providers.seventeentrack import tasks

    return tasks.sync_silent()


@shared_task(name="lifecycle.cargoai.poll")
def cargoai_poll() -> dict:
    from lifecycle.providers.cargoai import tasks

    return tasks.poll()


@shared_task(name="lifecycle.cargoai.renew")
def cargoai_renew() -> dict:
    return jobs.cargoai_renew()


@shared_task(name="lifecycle.cleanup.safety_net")
def safety_net() -> dict:
    return jobs.cleanup("safety-net")


@shared_task(name="lifecycle.cleanup.stale")
def stale_shipments() -> dict:
    return jobs.cleanup("stale")


@shared_task(name="lifecycle.cleanup.mirror_17track")
def mirror_17track() -> dict:
    return jobs.cleanup("mirror-17track")


@shared_task(name="lifecycle.cleanup.retention")
def retention() -> dict:
    return jobs.cleanup("retention")


@shared_task(name="lifecycle.cleanup.retry_failed")
def retry_failed() -> dict:
    return jobs.cleanup("retry-failed")


@shared_task(name="lifecycle.cleanup.reconcile")
def reconcile() -> dict:
    return jobs.cleanup("reconcile")


@shared_task(name="lifecycle.admin.refresh_counts")
def refresh_overview_counts() -> dict:
    from lifecycle.admin import counts

    return counts.refresh_job()


@shared_task(name="lifecycle.maintenance.heartbeat", bind=True)
def heartbeat(self) -> dict:  # type: ignore[no-untyped-def]
    return jobs.heartbeat(self.request.hostname or "worker")
