"""The deliver stage: outbox -> C-STORE or STOW-RS to every destination, one Delivery row each."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

from db import audit, jobs
from db.models import DeliveryState, Job, JobState
from dicom_node.statuses import is_permanent_failure
from kernel.errors import PeerRejected, TransientError
from kernel.settings import Destination, StowDestination
from pipeline.context import NodeContext

log = logging.getLogger(__name__)


class DeliveryOutcome(NamedTuple):
    """One attempt's result: the delivery's state after it, and the peer's error (None: sent)."""

    state: DeliveryState
    error: str | None


#: the longest wait between two attempts, whatever the backoff or the peer asks
MAX_RETRY_SECONDS = 3600


def retry_delay(attempt: int, asked: float | None = None) -> timedelta:
    """Exponential backoff: 10 s, 20 s, 40 s ... or longer when the peer ``asked`` for a
    longer wait (HTTP Retry-After); capped at one hour."""
    backoff = 10 * 2 ** max(0, attempt - 1)
    return timedelta(seconds=min(MAX_RETRY_SECONDS, max(backoff, asked or 0)))


def send(
    ctx: NodeContext,
    destination: Destination | StowDestination,
    paths: list[Path],
    resend: bool = False,
) -> None:
    """Store ``paths`` at ``destination``: STOW-RS for a DICOMweb origin, else C-STORE.
    ``resend``: an earlier attempt failed (a STOW-RS origin is first asked whether it stored
    them after all).

    Raises TransientError (retry later) or PeerRejected (the peer refused an instance).
    """
    if isinstance(destination, StowDestination):
        from dicom_node.stow import StowTls, stow_instances

        tls = StowTls.from_settings(ctx.settings)
        timeout = ctx.settings.network_timeout_seconds
        stow_instances(destination, paths, timeout=timeout, tls=tls, resend=resend)
        return
    from dicom_node.scu import send_instances
    from dicom_node.tls import client_context_for

    send_instances(destination, paths, ctx.settings.ae_title,
                   tls=client_context_for(ctx.settings, destination))


def deliver_to(
    ctx: NodeContext, job_id: int, destination: Destination | StowDestination, paths: list[Path],
    actor: str = "worker",
) -> DeliveryOutcome:
    """One attempt to send a job's outputs to one destination; records and audits the outcome
    (SENT, RETRY with backoff, or FAILED: refused, or ``max_delivery_attempts`` reached)."""
    error: str | None = None
    permanent = False
    asked_wait: float | None = None
    with ctx.sessions.begin() as session:
        tried_before = jobs.delivery_for(session, job_id, str(destination)).attempts > 0
    try:
        send(ctx, destination, paths, resend=tried_before)
    except PeerRejected as exc:
        error = str(exc)
        permanent = is_permanent_failure(exc.status)
    except TransientError as exc:
        error = str(exc)
        asked_wait = exc.retry_after
    except Exception as exc:  # one destination's surprise must not stop the others
        log.exception("delivery attempt failed unexpectedly", extra={"job_id": job_id})
        error = f"{type(exc).__name__}: {exc}"[:2000]
    with ctx.sessions.begin() as session:
        delivery = jobs.delivery_for(session, job_id, str(destination))
        delivery.attempts += 1
        now = ctx.clock()
        if error is None:
            delivery.state, delivery.sent_at, delivery.last_error = DeliveryState.SENT, now, None
            audit.record(session, actor, "deliver", "delivery", delivery.id, destination=str(destination))
            log.info("delivered", extra={"job_id": job_id, "destination": str(destination)})
            return DeliveryOutcome(DeliveryState.SENT, None)
        delivery.last_error = error
        if permanent or delivery.attempts >= ctx.settings.max_delivery_attempts:
            delivery.state = DeliveryState.FAILED
            audit.record(session, actor, "deliver_failed", "delivery", delivery.id, error=error)
        else:
            delivery.state = DeliveryState.RETRY
            delivery.retry_at = now + retry_delay(delivery.attempts, asked_wait)
            audit.record(session, actor, "deliver_retry", "delivery", delivery.id, error=error)
        state = delivery.state
    log.warning("delivery failed", extra={"job_id": job_id, "destination": str(destination), "error": error})
    return DeliveryOutcome(state, error)


def deliver(
    ctx: NodeContext,
    job: Job,
    files: dict[str, str],
    sent_state: JobState = JobState.DELIVERED,
    reason: str | None = None,
) -> bool:
    """Send the job's outputs to every configured destination; True when all are SENT.

    When every destination is SENT the job becomes ``sent_state`` (DELIVERED; a skipped job's
    "not run" SR: SKIPPED with its ``reason``), in one step, so no reader sees a skipped job
    DELIVERED; when every one is final and one is dead-lettered (FAILED) the job becomes FAILED
    (``lnm-node jobs requeue`` resends it).
    """
    if job.shadow:  # a shadow model version's results stay on the node (issue 5)
        with ctx.sessions.begin() as session:
            jobs.set_job_state(session, session.get(Job, job.id), JobState.SKIPPED,
                               reason="shadow model version: not delivered")
        log.info("shadow job not delivered", extra={"job_id": job.id})
        return True
    paths = [Path(files[role]) for role in sorted(files)]
    states: list[DeliveryState] = []
    for destination in ctx.settings.destinations:
        with ctx.sessions.begin() as session:
            state = jobs.delivery_for(session, job.id, str(destination)).state
        if state not in (DeliveryState.SENT, DeliveryState.FAILED):
            state = deliver_to(ctx, job.id, destination, paths).state
        states.append(state)
    all_sent = all(state == DeliveryState.SENT for state in states)
    if all_sent:
        fields = {} if reason is None else {"reason": reason}
        with ctx.sessions.begin() as session:
            jobs.set_job_state(session, session.get(Job, job.id), sent_state, **fields)
    elif all(state in (DeliveryState.SENT, DeliveryState.FAILED) for state in states):
        with ctx.sessions.begin() as session:
            jobs.set_job_state(session, session.get(Job, job.id), JobState.FAILED,
                               reason="delivery dead-lettered")
    return all_sent
