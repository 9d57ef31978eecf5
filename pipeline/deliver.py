"""The deliver stage: outbox -> C-STORE to every destination, one Delivery row each."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from db import audit, jobs
from db.models import DeliveryState, Job, JobState
from kernel.errors import PeerRejected, TransientError
from pipeline.context import NodeContext

log = logging.getLogger(__name__)

#: attempts before a delivery is dead-lettered (FAILED)
MAX_DELIVERY_ATTEMPTS = 8


def retry_delay(attempt: int) -> timedelta:
    """Exponential backoff: 10 s, 20 s, 40 s ... capped at one hour."""
    return timedelta(seconds=min(3600, 10 * 2 ** max(0, attempt - 1)))


def deliver(ctx: NodeContext, job: Job, files: dict[str, str]) -> bool:
    """Send the job's outputs to every configured destination; True when all are SENT."""
    from dicom_node.scu import send_instances

    paths = [Path(files[role]) for role in sorted(files)]
    all_sent = True
    for destination in ctx.settings.destinations:
        with ctx.sessions.begin() as session:
            delivery = jobs.delivery_for(session, job.id, str(destination))
            if delivery.state in (DeliveryState.SENT, DeliveryState.FAILED):
                all_sent &= delivery.state == DeliveryState.SENT
                continue
            delivery_id = delivery.id
        error: str | None = None
        permanent = False
        try:
            send_instances(destination, paths, ctx.settings.ae_title)
        except PeerRejected as exc:
            error = str(exc)
            permanent = exc.status >= 0xC000 or 0xA900 <= exc.status <= 0xA9FF
        except TransientError as exc:
            error = str(exc)
        with ctx.sessions.begin() as session:
            delivery = jobs.delivery_for(session, job.id, str(destination))
            delivery.attempts += 1
            now = ctx.clock()
            if error is None:
                delivery.state, delivery.sent_at, delivery.last_error = DeliveryState.SENT, now, None
                audit.record(session, "worker", "deliver", "delivery", delivery_id, destination=str(destination))
                log.info("delivered", extra={"job_id": job.id, "destination": str(destination)})
                continue
            all_sent = False
            delivery.last_error = error
            if permanent or delivery.attempts >= MAX_DELIVERY_ATTEMPTS:
                delivery.state = DeliveryState.FAILED
                audit.record(session, "worker", "deliver_failed", "delivery", delivery_id, error=error)
            else:
                delivery.state = DeliveryState.RETRY
                delivery.retry_at = now + retry_delay(delivery.attempts)
                audit.record(session, "worker", "deliver_retry", "delivery", delivery_id, error=error)
            log.warning("delivery failed", extra={"job_id": job.id, "destination": str(destination), "error": error})
    if all_sent:
        with ctx.sessions.begin() as session:
            jobs.set_job_state(session, session.get(Job, job.id), JobState.DELIVERED)
    return all_sent
