"""Hand jobs to the queue: one Celery message per job, on its model's queue, marked sent.

The sweeper calls it for due jobs; the SCP calls it for the jobs a completed MPPS created, at
once, so a study is queued the moment it is complete instead of at the next sweep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import Celery

from db import jobs, jobs_admin
from pipeline.celery_app import enqueue
from pipeline.context import NodeContext
from pipeline.routing import queue_for

log = logging.getLogger(__name__)


def enqueue_jobs(ctx: NodeContext, app: Celery, job_ids: list[int]) -> None:
    """Send each job's hint to its queue and record when (the database stays the truth)."""
    if not job_ids:
        return
    with ctx.sessions() as session:
        models = jobs_admin.job_models(session, job_ids)
    for job_id in job_ids:
        model_key, family = models.get(job_id, ("", None))
        queue = queue_for(ctx.settings, model_key, family)
        enqueue(app, job_id, queue)
        with ctx.sessions.begin() as session:
            jobs.mark_enqueued(session, [job_id], ctx.clock())
        log.info("enqueued", extra={"job_id": job_id, "queue": queue})


def queue_hand_over(ctx: NodeContext, app: Celery) -> Callable[[list[int]], None]:
    """The SCP's ``on_assembled``: enqueue the jobs an MPPS created."""
    return lambda job_ids: enqueue_jobs(ctx, app, job_ids)
