"""The Modality Performed Procedure Step SCP (PS3.4 Annex F.7): N-CREATE and N-SET.

A modality creates a step (N-CREATE, status IN PROGRESS) when an exam starts and sets it
(N-SET) to COMPLETED or DISCONTINUED at the end, listing the instances it made in the
Performed Series Sequence (Referenced Image Sequence and Referenced Non-Image Composite SOP
Instance Sequence). When the step is final and every listed instance has arrived, this SCP
acts on the step's studies itself, in one transaction (:func:`db.mpps.act_on_step`), and hands
the new jobs to ``on_assembled`` (the queue) after the commit. When an instance is missing,
the step waits: the C-STORE of the last one (:meth:`MppsScp.instance_stored`), or the
sweeper's pass (:func:`pipeline.sweeper.sweep`, the safety net), acts on it.

Statuses answered:

- N-CREATE: 0x0000; 0x0111 a step with that SOP Instance UID exists; 0x0120 a Type 1
  attribute the node acts on is missing (the status, the Scheduled Step Attributes Sequence or
  an item's Study Instance UID: without them the step cannot hold its study); 0x0106 the status
  is not IN PROGRESS; 0x0110 the attribute list cannot be read or recorded.
- N-SET: 0x0000; 0x0112 no such step; 0x0110 the step is already COMPLETED or DISCONTINUED
  ("may no longer be updated"), or the modification cannot be read or recorded; 0x0106 the
  status is not one of IN PROGRESS, COMPLETED, DISCONTINUED.

Every failure carries its reason in Error Comment; "may no longer be updated" also has the
Error ID the standard gives it (0xA710).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom.events import Event
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from db import mpps
from db.models import Mpps, MppsStatus
from dicom_node.statuses import status_with_comment

logger = logging.getLogger(__name__)

SUCCESS = 0x0000
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_SOP_INSTANCE = 0x0112
MISSING_ATTRIBUTE = 0x0120
#: Error Comment and Error ID the standard gives for an N-SET of a final step (PS3.4 F.7.2.2.4)
NO_LONGER_UPDATED = "Performed Procedure Step Object may no longer be updated"
NO_LONGER_UPDATED_ERROR_ID = 0xA710

#: an N-CREATE or N-SET answer: the status (with its Error Comment on failure) and the reply
Answer = tuple[int | Dataset, Dataset | None]

_REFERENCE_SEQUENCES = ("ReferencedImageSequence", "ReferencedNonImageCompositeSOPInstanceSequence")

#: called with the ids of the jobs an MPPS created, after their transaction committed
OnAssembled = Callable[[list[int]], None]


class InvalidStatus(ValueError):
    """The Performed Procedure Step Status is missing or not a defined term."""


def missing_create_attributes(dataset: Dataset) -> list[str]:
    """The Type 1 N-CREATE attributes (PS3.4 Table F.7.2-1) the node acts on that ``dataset``
    lacks or leaves empty: the status, and the study each scheduled step names."""
    missing = [name for name in ("PerformedProcedureStepStatus", "ScheduledStepAttributesSequence")
               if not dataset.get(name)]
    items = dataset.get("ScheduledStepAttributesSequence") or []
    if any(not item.get("StudyInstanceUID") for item in items):
        missing.append("ScheduledStepAttributesSequence>StudyInstanceUID")
    return missing


def step_content(dataset: Dataset) -> mpps.StepContent:
    """Status, scheduled study UIDs and listed SOP Instance UIDs of a step's attributes."""
    text = str(dataset.get("PerformedProcedureStepStatus", "") or "").strip().upper()
    try:
        status = MppsStatus(text)
    except ValueError as error:
        raise InvalidStatus(f"invalid Performed Procedure Step Status {text!r}") from error
    studies = [
        str(item.StudyInstanceUID)
        for item in dataset.get("ScheduledStepAttributesSequence", [])
        if item.get("StudyInstanceUID")
    ]
    listed = []
    for series in dataset.get("PerformedSeriesSequence", []):
        for name in _REFERENCE_SEQUENCES:
            listed += [
                str(item.ReferencedSOPInstanceUID)
                for item in series.get(name, [])
                if item.get("ReferencedSOPInstanceUID")
            ]
    return mpps.StepContent(status, list(dict.fromkeys(studies)), list(dict.fromkeys(listed)))


def _calling_ae(event: Event) -> str:
    return str(event.assoc.requestor.ae_title).strip()


class MppsScp:
    """``evt.EVT_N_CREATE`` / ``evt.EVT_N_SET`` handlers, and the hook the C-STORE path calls.

    ``discontinued_rule`` is ``settings.mpps_discontinued`` (``run`` or ``skip``); ``max_wait``
    is ``settings.max_wait_seconds`` (a step not updated for that long is abandoned).
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        discontinued_rule: str,
        max_wait: timedelta,
        on_assembled: OnAssembled | None = None,
        scope_of: mpps.ScopeOf | None = None,
    ) -> None:
        self._sessions = sessions
        self._scope_of = scope_of
        self._rule = discontinued_rule
        self._max_wait = max_wait
        self._on_assembled = on_assembled
        self._lock = threading.Lock()
        #: SOP Instance UID -> step SOP Instance UID, for final steps still missing instances
        self._awaited: dict[str, str] = {}
        try:
            with sessions() as session:
                for step in mpps.pending_steps(session):
                    self._await(step.sop_instance_uid, mpps.missing_instances(session, step))
        except SQLAlchemyError as error:  # the database is down: the sweeper acts on them later
            logger.error("pending MPPS steps not loaded: %s", type(error).__name__)

    def handle_create(self, event: Event) -> Answer:
        """N-CREATE: record a new IN PROGRESS step."""
        try:
            dataset = event.attribute_list
            missing = missing_create_attributes(dataset)
            content = step_content(dataset) if not missing else None
        except InvalidStatus as error:
            logger.warning("MPPS N-CREATE refused 0x0106: %s", error)
            return status_with_comment(INVALID_ATTRIBUTE_VALUE, str(error)), None
        except Exception as error:  # noqa: BLE001  (an undecodable attribute list)
            logger.warning("MPPS N-CREATE refused 0x0110: %s", type(error).__name__)
            return status_with_comment(PROCESSING_FAILURE, "attribute list does not decode"), None
        if content is None:
            why = "missing: " + ", ".join(missing)  # Error Comment is 64 characters at most
            logger.warning("MPPS N-CREATE refused 0x0120: %s", why)
            return status_with_comment(MISSING_ATTRIBUTE, why), None
        if content.status != MppsStatus.IN_PROGRESS:
            logger.warning("MPPS N-CREATE refused 0x0106: status %s", content.status.value)
            why = f"N-CREATE status must be IN PROGRESS, not {content.status.value}"
            return status_with_comment(INVALID_ATTRIBUTE_VALUE, why), None
        reply = None
        uid = event.request.AffectedSOPInstanceUID
        if uid is None:  # the SCP assigns one and returns it (PS3.7 10.1.5.1.4)
            uid = generate_uid()
            reply = Dataset()
            reply.AffectedSOPInstanceUID = uid
        try:
            with self._sessions.begin() as session:
                if mpps.find_step(session, str(uid)) is not None:
                    return status_with_comment(DUPLICATE_SOP_INSTANCE, "step already exists"), None
                mpps.create_step(
                    session,
                    str(uid),
                    content,
                    dataset.to_json_dict(),
                    _calling_ae(event),
                    datetime.now(UTC),
                )
        except IntegrityError:  # a concurrent N-CREATE of the same UID committed first
            with self._sessions() as session:
                exists = mpps.find_step(session, str(uid)) is not None
            if exists:
                logger.warning("MPPS N-CREATE refused 0x0111: %s created concurrently", uid)
                return status_with_comment(DUPLICATE_SOP_INSTANCE, "step already exists"), None
            logger.error("MPPS N-CREATE not recorded: IntegrityError")
            return status_with_comment(PROCESSING_FAILURE, "database error, not recorded"), None
        except SQLAlchemyError as error:
            logger.error("MPPS N-CREATE not recorded: %s", type(error).__name__)
            return status_with_comment(PROCESSING_FAILURE, "database error, not recorded"), None
        logger.info("MPPS %s created (%d studies)", uid, len(content.study_instance_uids))
        return SUCCESS, reply

    def handle_set(self, event: Event) -> Answer:
        """N-SET: merge the modifications; act on a final step whose instances have arrived."""
        uid = str(event.request.RequestedSOPInstanceUID)
        outcome = None
        try:
            modifications = event.modification_list
            with self._sessions.begin() as session:
                step = session.scalar(mpps.select_step(uid).with_for_update())
                if step is None:
                    return status_with_comment(NO_SUCH_SOP_INSTANCE, "no such step"), None
                if step.status in mpps.FINAL:
                    logger.warning(
                        "MPPS %s N-SET refused 0x0110: already %s", uid, step.status.value
                    )
                    answer = status_with_comment(PROCESSING_FAILURE, NO_LONGER_UPDATED)
                    answer.ErrorID = NO_LONGER_UPDATED_ERROR_ID
                    return answer, None
                attributes = {**step.attributes, **modifications.to_json_dict()}
                content = step_content(Dataset.from_json(attributes))
                mpps.update_step(session, step, content, attributes, datetime.now(UTC))
                outcome = self._act(session, step)
        except InvalidStatus as error:
            logger.warning("MPPS %s N-SET refused 0x0106: %s", uid, error)
            return status_with_comment(INVALID_ATTRIBUTE_VALUE, str(error)), None
        except SQLAlchemyError as error:
            logger.error("MPPS %s N-SET not recorded: %s", uid, type(error).__name__)
            return status_with_comment(PROCESSING_FAILURE, "database error, not recorded"), None
        except Exception as error:  # noqa: BLE001  (an undecodable modification list)
            logger.warning("MPPS %s N-SET refused 0x0110: %s", uid, type(error).__name__)
            return status_with_comment(PROCESSING_FAILURE, "modification list does not decode"), None
        logger.info("MPPS %s set to %s", uid, content.status.value)
        self._hand_over(outcome)
        return SUCCESS, None

    def instance_stored(self, sop_instance_uid: str) -> None:
        """Called after an instance is stored: acts on the final step that waited for it."""
        with self._lock:
            step_uid = self._awaited.pop(sop_instance_uid, None)
        if step_uid is None:
            return
        try:
            with self._sessions.begin() as session:
                step = session.scalar(mpps.select_step(step_uid).with_for_update())
                outcome = self._act(session, step) if step is not None else None
        except SQLAlchemyError as error:  # the sweeper acts on it later
            logger.error("MPPS %s not acted on: %s", step_uid, type(error).__name__)
            return
        self._hand_over(outcome)

    def _act(self, session: Session, step: Mpps) -> mpps.StepOutcome | None:
        outcome = mpps.act_on_step(
            session, step, self._rule, datetime.now(UTC), self._max_wait, self._scope_of
        )
        if outcome is None and step.status in mpps.FINAL and step.acted_at is None:
            self._await(step.sop_instance_uid, mpps.missing_instances(session, step))
        return outcome

    def _await(self, step_uid: str, missing: list[str]) -> None:
        with self._lock:
            for sop_uid in missing:
                self._awaited[sop_uid] = step_uid

    def _hand_over(self, outcome: mpps.StepOutcome | None) -> None:
        if outcome is None:
            return
        logger.info("MPPS %s: %d jobs", outcome.action, len(outcome.job_ids))
        if outcome.job_ids and self._on_assembled is not None:
            try:
                self._on_assembled(outcome.job_ids)
            except Exception:  # the jobs are committed: the sweeper re-sends their hints
                logger.exception("could not hand MPPS jobs to the queue")
