"""Named queries of Modality Performed Procedure Steps (MPPS): record, update, act on the end.

A step lists the instances the modality made (Performed Series Sequence). When its status is
final (COMPLETED or DISCONTINUED) and every listed instance has arrived, the node acts on its
studies at once instead of waiting for the quiet time: it assembles them (COMPLETED, or
DISCONTINUED under the ``run`` rule) or closes them without jobs (DISCONTINUED, ``skip``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from db import audit
from db.jobs import assemble_study
from db.models import Instance, Mpps, MppsStatus, Study, StudyState

ACTOR = "mpps"
FINAL = (MppsStatus.COMPLETED, MppsStatus.DISCONTINUED)


@dataclass(frozen=True)
class StepContent:
    """What the node reads from a step's attributes."""

    status: MppsStatus
    study_instance_uids: list[str]
    referenced_sop_instance_uids: list[str]


@dataclass(frozen=True)
class StepOutcome:
    """What acting on a final step did: ``action`` and the ids of the jobs it created."""

    action: str
    job_ids: list[int]


def select_step(sop_instance_uid: str) -> Select[tuple[Mpps]]:
    """The statement selecting the step with this SOP Instance UID (add a lock as needed)."""
    return select(Mpps).where(Mpps.sop_instance_uid == sop_instance_uid)


def find_step(session: Session, sop_instance_uid: str) -> Mpps | None:
    """The step with this SOP Instance UID, or None."""
    return session.scalar(select_step(sop_instance_uid))


def create_step(
    session: Session,
    sop_instance_uid: str,
    content: StepContent,
    attributes: dict[str, object],
    calling_ae_title: str | None,
    now: datetime,
) -> Mpps:
    """Add a new step (the caller checked the UID is new) and audit it; the caller commits."""
    step = Mpps(
        sop_instance_uid=sop_instance_uid,
        status=content.status,
        calling_ae_title=calling_ae_title,
        study_instance_uids=content.study_instance_uids,
        referenced_sop_instance_uids=content.referenced_sop_instance_uids,
        attributes=attributes,
        created_at=now,
        updated_at=now,
    )
    session.add(step)
    session.flush()
    audit.record(
        session,
        ACTOR,
        "mpps-create",
        "mpps",
        step.id,
        status=content.status.value,
        calling_ae_title=calling_ae_title,
        studies=len(content.study_instance_uids),
    )
    return step


def update_step(
    session: Session, step: Mpps, content: StepContent, attributes: dict[str, object], now: datetime
) -> None:
    """Store an N-SET's result (merged attributes, new status and lists) and audit it."""
    step.status = content.status
    step.study_instance_uids = content.study_instance_uids
    step.referenced_sop_instance_uids = content.referenced_sop_instance_uids
    step.attributes = attributes
    step.updated_at = now
    audit.record(
        session,
        ACTOR,
        "mpps-set",
        "mpps",
        step.id,
        status=content.status.value,
        referenced_instances=len(content.referenced_sop_instance_uids),
    )


def missing_instances(session: Session, step: Mpps) -> list[str]:
    """The listed SOP Instance UIDs not received yet, in the step's order."""
    listed = list(dict.fromkeys(step.referenced_sop_instance_uids))
    if not listed:
        return []
    here = set(
        session.scalars(
            select(Instance.sop_instance_uid).where(Instance.sop_instance_uid.in_(listed))
        )
    )
    return [uid for uid in listed if uid not in here]


def step_study_ids(session: Session, step: Mpps) -> list[int]:
    """Ids of the received studies the step names or holds instances of, ascending."""
    named = set(
        session.scalars(
            select(Study.id).where(Study.study_instance_uid.in_(step.study_instance_uids))
        )
    )
    listed = step.referenced_sop_instance_uids
    holding = (
        set(session.scalars(select(Instance.study_id).where(Instance.sop_instance_uid.in_(listed))))
        if listed
        else set()
    )
    return sorted(named | holding)


#: (session, study id) -> scope verdicts per ``key@version`` (``pipeline.scoping``)
ScopeOf = Callable[[Session, int], dict[str, dict[str, Any]]]


def act_on_step(
    session: Session,
    step: Mpps,
    discontinued_rule: str,
    now: datetime,
    max_wait: timedelta,
    scope_of: ScopeOf | None = None,
) -> StepOutcome | None:
    """Act on a final step whose listed instances have all arrived; None when it cannot yet.

    COMPLETED, or DISCONTINUED under the ``run`` rule: each of its studies still receiving is
    assembled (:func:`db.jobs.assemble_study`). DISCONTINUED under ``skip``: each is closed
    without jobs (READY for its generation: only a later instance reopens it). The step is
    marked acted, with an audit event; the caller commits, then enqueues the jobs. ``scope_of``
    gives each study's routing verdicts, so a model outside its scope gets no job here either.

    A study that another step still reports IN PROGRESS (updated within ``max_wait``: an
    older one is abandoned) waits for that step too: two exams, or one step per series, under
    one study. The step is acted on once the last of them ends.
    """
    if step.status not in FINAL or step.acted_at is not None or missing_instances(session, step):
        return None
    study_ids = step_study_ids(session, step)
    if set(study_ids) & studies_in_progress(session, since=now - max_wait):
        return None
    skip = step.status == MppsStatus.DISCONTINUED and discontinued_rule == "skip"
    job_ids: list[int] = []
    for study_id in study_ids:
        if skip:
            _close_without_jobs(session, study_id, step.id)
        else:
            scope = scope_of(session, study_id) if scope_of is not None else None
            created = assemble_study(session, study_id, False, scope, actor=ACTOR)
            job_ids += [job.id for job in created]
    step.acted_at = now
    step.action = "skipped" if skip else "assembled"
    audit.record(
        session,
        ACTOR,
        f"mpps-{step.action}",
        "mpps",
        step.id,
        status=step.status.value,
        studies=study_ids,
        jobs=job_ids,
    )
    return StepOutcome(step.action, job_ids)


def _close_without_jobs(session: Session, study_id: int, step_id: int) -> None:
    study = session.get(Study, study_id, with_for_update=True)
    if study is None or study.state != StudyState.RECEIVING:
        return
    study.state = StudyState.READY
    study.assembled_generation = study.generation
    audit.record(
        session,
        ACTOR,
        "skip",
        "study",
        study.id,
        generation=study.generation,
        reason="MPPS DISCONTINUED",
        mpps=step_id,
    )


def studies_in_progress(session: Session, since: datetime | None = None) -> set[int]:
    """Ids of received studies named by a step still IN PROGRESS and updated after ``since``
    (an older one is taken as abandoned): their quiet time does not make them complete.
    Without ``since``: named by any step still IN PROGRESS, abandoned ones included."""
    recent = Mpps.updated_at >= since if since is not None else True
    named: set[str] = set()
    for uids in session.scalars(
        select(Mpps.study_instance_uids).where(Mpps.status == MppsStatus.IN_PROGRESS, recent)
    ):
        named.update(uids)
    if not named:
        return set()
    return set(session.scalars(select(Study.id).where(Study.study_instance_uid.in_(named))))


def pending_steps(session: Session) -> list[Mpps]:
    """Final steps not acted on yet (some listed instance had not arrived), oldest first."""
    return list(
        session.scalars(
            select(Mpps).where(Mpps.status.in_(FINAL), Mpps.acted_at.is_(None)).order_by(Mpps.id)
        )
    )
