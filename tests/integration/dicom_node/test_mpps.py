"""The MPPS SCP over a real association: a pynetdicom MPPS SCU against the node's SCP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import ModalityPerformedProcedureStep
from sqlalchemy import select

from db.models import AuditEvent, Job, Mpps, MppsStatus, Study, StudyState
from dicom_node.scp import start_scp
from dicom_node.scu import send_instances
from kernel.settings import Destination, Settings
from phantom.us_dicom import write_us_study
from pipeline.celery_app import make_celery
from pipeline.context import NodeContext
from pipeline.scoping import ONE_PATIENT_RULE
from pipeline.serve import prepare
from pipeline.sweeper import sweep
from tests.support.models import package_model


class Node:
    """A prepared node (tiny model enabled) with its SCP listening; ``handed`` collects the job
    ids the SCP handed to the queue."""

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self.handed: list[list[int]] = []
        self.server = start_scp(
            ctx.settings, ctx.spool, ctx.sessions, on_assembled=self.handed.append
        )
        self.destination = Destination(
            ae_title=ctx.settings.ae_title, host="127.0.0.1", port=self.server.server_address[1]
        )

    def store(self, paths: list[Path]) -> None:
        send_instances(self.destination, paths, "MODALITY")

    def study(self, uid: str) -> Study:
        with self.ctx.sessions() as session:
            study = session.scalar(select(Study).where(Study.study_instance_uid == uid))
            assert study is not None
            session.expunge(study)
            return study

    def jobs(self) -> list[Job]:
        with self.ctx.sessions() as session:
            return list(session.scalars(select(Job)))

    def audit_actions(self) -> list[str]:
        with self.ctx.sessions() as session:
            return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[Callable[..., Node]]:
    package_model(tmp_path / "models" / "tiny-ynet", seed=0)
    nodes: list[Node] = []

    def start(**overrides: object) -> Node:
        values: dict[str, object] = {
            "home": tmp_path / f"home{len(nodes)}",
            "models_dir": tmp_path / "models",
            "default_model": "tiny-ynet",
            "port": 0,
            "quiet_seconds": 3600,
        }
        values.update(overrides)
        node = Node(prepare(Settings(**values)))
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.server.shutdown()


@pytest.fixture
def study_files(tmp_path: Path) -> list[Path]:
    return write_us_study(tmp_path / "study", seed=7, count=3)


def _associate(node: Node) -> Association:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", node.destination.port, ae_title=node.ctx.settings.ae_title)
    assert assoc.is_established
    return assoc


def _in_progress(study_uid: str) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.PerformedProcedureStepID = "PPS1"
    ds.Modality = "US"
    ds.PerformedStationAETitle = "MODALITY"
    ds.PerformedProcedureStepStartDate = "20261206"
    ds.PerformedProcedureStepStartTime = "080000"
    step = Dataset()
    step.StudyInstanceUID = study_uid
    step.AccessionNumber = ""
    ds.ScheduledStepAttributesSequence = Sequence([step])
    ds.PerformedSeriesSequence = Sequence([])
    return ds


def _final(status: str, files: list[Path]) -> Dataset:
    """An N-SET modification list ending the step and listing ``files`` as its images."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepEndDate = "20261206"
    ds.PerformedProcedureStepEndTime = "081500"
    series = Dataset()
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    series.SeriesInstanceUID = headers[0].SeriesInstanceUID if headers else generate_uid()
    series.ReferencedImageSequence = Sequence()
    for header in headers:
        item = Dataset()
        item.ReferencedSOPClassUID = header.SOPClassUID
        item.ReferencedSOPInstanceUID = header.SOPInstanceUID
        series.ReferencedImageSequence.append(item)
    series.ReferencedNonImageCompositeSOPInstanceSequence = Sequence()
    ds.PerformedSeriesSequence = Sequence([series])
    return ds


def _create(assoc: Association, study_uid: str, uid: str) -> int:
    status, _ = assoc.send_n_create(_in_progress(study_uid), ModalityPerformedProcedureStep, uid)
    return int(status.Status)


def _set(assoc: Association, modification: Dataset, uid: str) -> int:
    status, _ = assoc.send_n_set(modification, ModalityPerformedProcedureStep, uid)
    return int(status.Status)


def _study_uid(files: list[Path]) -> str:
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def _perform(node: Node, files: list[Path], stored: list[Path]) -> tuple[Association, str, str]:
    """A modality's exam: N-CREATE (IN PROGRESS), then the C-STORE of ``stored``; returns the
    open MPPS association, the study and the step UIDs."""
    study_uid, step_uid = _study_uid(files), generate_uid()
    assoc = _associate(node)
    assert _create(assoc, study_uid, step_uid) == 0x0000
    node.store(stored)
    return assoc, study_uid, step_uid


def _end(assoc: Association, status: str, files: list[Path], step_uid: str) -> None:
    """N-SET ``status`` listing ``files``, answered 0x0000; release."""
    assert _set(assoc, _final(status, files), step_uid) == 0x0000
    assoc.release()


def test_completed_step_with_every_instance_assembles_its_study_at_once(
    make_node: Callable[..., Node], study_files: list[Path]
) -> None:
    node = make_node()
    assoc, study_uid, step_uid = _perform(node, study_files, study_files)
    assert node.study(study_uid).state == StudyState.RECEIVING  # quiet time is an hour
    _end(assoc, "COMPLETED", study_files, step_uid)

    assert node.study(study_uid).state == StudyState.READY
    jobs = node.jobs()
    assert [job.model_key for job in jobs] == ["tiny-ynet"]
    assert node.handed == [[jobs[0].id]]
    with node.ctx.sessions() as session:
        step = session.scalar(select(Mpps))
        assert step.status == MppsStatus.COMPLETED and step.action == "assembled"
        assert len(step.referenced_sop_instance_uids) == 3
    actions = node.audit_actions()
    assert (
        actions.index("mpps-create") < actions.index("mpps-set") < actions.index("mpps-assembled")
    )
    assert "assemble" in actions


def test_completed_step_waits_for_its_last_instance_then_assembles_on_its_arrival(
    make_node: Callable[..., Node], study_files: list[Path]
) -> None:
    node = make_node()
    assoc, study_uid, step_uid = _perform(node, study_files, study_files[:2])
    _end(assoc, "COMPLETED", study_files, step_uid)
    assert node.study(study_uid).state == StudyState.RECEIVING
    assert node.jobs() == [] and node.handed == []

    node.store(study_files[2:])
    assert node.study(study_uid).state == StudyState.READY
    assert node.handed == [[job.id for job in node.jobs()]] and node.handed[0]


def test_completed_step_of_a_study_of_two_patients_no_job_counted_from_rows_not_files(
    make_node: Callable[..., Node], study_files: list[Path]
) -> None:
    """The N-SET transaction applies the one-patient rule on the patient keys recorded at
    receive: the stored files are not read (here they are gone; before, every file was read in
    the transaction, and with them gone the study counted no patient)."""
    for path, patient in zip(study_files, ["PAT-A", "PAT-A", "PAT-B"], strict=True):
        ds = pydicom.dcmread(path)
        ds.PatientID = patient
        ds.save_as(path, enforce_file_format=True)
    node = make_node()
    assoc, study_uid, step_uid = _perform(node, study_files, study_files)
    for stored in node.ctx.spool.root.glob("incoming/*/*/*.dcm"):
        stored.unlink()
    _end(assoc, "COMPLETED", study_files, step_uid)

    study = node.study(study_uid)
    assert study.state == StudyState.READY and node.jobs() == [] and node.handed == []
    verdicts = study.scope["models"]
    assert verdicts and {v["rule"] for v in verdicts} == {ONE_PATIENT_RULE}
    assert "name 2 patients" in verdicts[0]["reason"]


@pytest.mark.parametrize(("rule", "jobs_expected"), [("skip", 0), ("run", 1)])
def test_discontinued_step_follows_the_setting(
    make_node: Callable[..., Node], study_files: list[Path], rule: str, jobs_expected: int
) -> None:
    node = make_node(mpps_discontinued=rule)
    assoc, study_uid, step_uid = _perform(node, study_files, study_files)
    _end(assoc, "DISCONTINUED", study_files, step_uid)

    study = node.study(study_uid)
    assert study.state == StudyState.READY
    assert len(node.jobs()) == jobs_expected
    # a skipped study is closed: the quiet timer does not assemble it later
    assert sweep(node.ctx, make_celery(node.ctx.settings)).assembled == 0
    assert len(node.jobs()) == jobs_expected
    assert ("skip" in node.audit_actions()) is (rule == "skip")


def test_step_statuses_follow_ps3_4_annex_f(
    make_node: Callable[..., Node], study_files: list[Path]
) -> None:
    node = make_node()
    study_uid, step_uid = _study_uid(study_files), generate_uid()
    assoc = _associate(node)
    completed_at_create = _in_progress(study_uid)
    completed_at_create.PerformedProcedureStepStatus = "COMPLETED"
    status, _ = assoc.send_n_create(
        completed_at_create, ModalityPerformedProcedureStep, generate_uid()
    )
    assert int(status.Status) == 0x0106  # a step starts IN PROGRESS
    assert status.ErrorComment == "N-CREATE status must be IN PROGRESS, not COMPLETED"
    assert _create(assoc, study_uid, step_uid) == 0x0000
    assert _create(assoc, study_uid, step_uid) == 0x0111  # duplicate SOP instance
    assert _set(assoc, _final("COMPLETED", []), generate_uid()) == 0x0112  # no such instance
    bad = Dataset()
    bad.PerformedProcedureStepStatus = "FINISHED"
    status, _ = assoc.send_n_set(bad, ModalityPerformedProcedureStep, step_uid)
    assert int(status.Status) == 0x0106
    assert status.ErrorComment == "invalid Performed Procedure Step Status 'FINISHED'"
    assert _set(assoc, _final("COMPLETED", []), step_uid) == 0x0000
    status, _ = assoc.send_n_set(_final("DISCONTINUED", []), ModalityPerformedProcedureStep, step_uid)
    # PS3.4 F.7.2.2.4: a final step may no longer be updated, with this comment and Error ID
    assert int(status.Status) == 0x0110
    assert status.ErrorComment == "Performed Procedure Step Object may no longer be updated"
    assert status.ErrorID == 0xA710
    assoc.release()


def test_sweeper_acts_on_a_completed_step_whose_last_instance_reached_another_scp(
    make_node: Callable[..., Node], study_files: list[Path]
) -> None:
    node = make_node()
    # a second SCP process of the same node (same database), started before the step ends
    other = start_scp(
        node.ctx.settings.model_copy(update={"port": 0}), node.ctx.spool, node.ctx.sessions
    )
    assoc, study_uid, step_uid = _perform(node, study_files, study_files[:2])
    _end(assoc, "COMPLETED", study_files, step_uid)
    try:  # receives the last instance
        send_instances(
            Destination(ae_title="LNMNODE", host="127.0.0.1", port=other.server_address[1]),
            study_files[2:],
            "MODALITY",
        )
    finally:
        other.shutdown()
    assert node.jobs() == []  # the SCP that holds the step did not hear of it

    result = sweep(node.ctx, make_celery(node.ctx.settings))
    assert node.study(study_uid).state == StudyState.READY
    assert result.enqueued == 1 and len(node.jobs()) == 1


def test_quiet_time_does_not_assemble_a_study_whose_step_is_in_progress(
    make_node: Callable[..., Node], study_files: list[Path]
) -> None:
    node = make_node(quiet_seconds=0)
    app = make_celery(node.ctx.settings)
    assoc, study_uid, step_uid = _perform(node, study_files, study_files)
    assert sweep(node.ctx, app).assembled == 0  # quiet, but the modality has not finished
    assert node.study(study_uid).state == StudyState.RECEIVING
    _end(assoc, "COMPLETED", study_files, step_uid)
    assert node.study(study_uid).state == StudyState.READY and len(node.jobs()) == 1


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_n_creates_of_one_uid_at_once_one_success_the_others_duplicate(
    make_node: Callable[..., Node], study_files: list[Path], database: str, tmp_path: Path
) -> None:
    """Six associations N-CREATE the same step at once: one 0x0000, five 0x0111 (before, a
    create that lost the race at the insert answered 0x0110 "database error")."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.support.databases import database_url

    with database_url(database, tmp_path) as url:
        node = make_node(**({} if database == "sqlite" else {"database_url": url}))
        study_uid, step_uid = _study_uid(study_files), generate_uid()
        associations = [_associate(node) for _ in range(6)]
        try:
            with ThreadPoolExecutor(len(associations)) as pool:
                statuses = list(pool.map(lambda a: _create(a, study_uid, step_uid), associations))
        finally:
            for assoc in associations:
                assoc.release()
        assert sorted(statuses) == [0x0000] + [0x0111] * 5


def test_study_of_two_steps_waits_for_both_to_end(
    make_node: Callable[..., Node], study_files: list[Path]
) -> None:
    """Two steps name one study (two exams, or one step per series): the first COMPLETED does
    not assemble it while the other is IN PROGRESS; the second's end does, once. Before, the
    first step assembled the study and the second exam's images came late, as a new generation."""
    node = make_node()
    first, study_uid, first_uid = _perform(node, study_files, study_files[:2])
    second = _associate(node)
    second_uid = generate_uid()
    assert _create(second, study_uid, second_uid) == 0x0000
    _end(first, "COMPLETED", study_files[:2], first_uid)
    assert node.study(study_uid).state == StudyState.RECEIVING
    assert node.jobs() == [] and node.handed == []
    app = make_celery(node.ctx.settings)
    assert sweep(node.ctx, app).jobs_created == 0  # the sweeper's pass waits as well

    node.store(study_files[2:])
    _end(second, "COMPLETED", study_files[2:], second_uid)
    study = node.study(study_uid)
    assert study.state == StudyState.READY and study.generation == 0
    jobs = node.jobs()
    assert len(jobs) == 1 and node.handed == [[jobs[0].id]]
    sweep(node.ctx, app)  # the first step is acted on too, with nothing left to do
    with node.ctx.sessions() as session:
        assert sorted(step.action for step in session.scalars(select(Mpps))) == ["assembled"] * 2
        assembled = session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(["assemble", "queue"]))
        ).all()
    assert len(node.jobs()) == 1
    assert {event.actor for event in assembled} == {"mpps"}  # not the quiet timer's "sweeper"


def test_n_create_without_the_attributes_the_node_acts_on_is_refused_missing_attribute(
    make_node: Callable[..., Node], study_files: list[Path]
) -> None:
    """PS3.4 Table F.7.2-1: the status and the scheduled steps' Study Instance UIDs are Type 1;
    without them a step cannot hold its study. Answered 0x0120 naming them, nothing recorded."""
    node = make_node()
    assoc = _associate(node)
    study_uid = _study_uid(study_files)
    no_steps = _in_progress(study_uid)
    del no_steps.ScheduledStepAttributesSequence
    no_study = _in_progress(study_uid)
    del no_study.ScheduledStepAttributesSequence[0].StudyInstanceUID
    no_status = _in_progress(study_uid)
    del no_status.PerformedProcedureStepStatus
    answers = []
    for dataset in (no_steps, no_study, no_status):
        status, _ = assoc.send_n_create(dataset, ModalityPerformedProcedureStep, generate_uid())
        answers.append((int(status.Status), str(status.ErrorComment)))
    assoc.release()
    assert answers == [
        (0x0120, "missing: ScheduledStepAttributesSequence"),
        (0x0120, "missing: ScheduledStepAttributesSequence>StudyInstanceUID"),
        (0x0120, "missing: PerformedProcedureStepStatus"),
    ]
    with node.ctx.sessions() as session:
        assert session.scalars(select(Mpps)).all() == []


def test_study_of_an_abandoned_step_is_assembled_at_its_quiet_time_and_audited_forced(
    make_node: Callable[..., Node], study_files: list[Path]
) -> None:
    from datetime import UTC, datetime, timedelta

    node = make_node(quiet_seconds=0, max_wait_seconds=600)
    app = make_celery(node.ctx.settings)
    assoc, study_uid, _ = _perform(node, study_files, study_files)
    assoc.release()  # the modality never ends its step
    assert sweep(node.ctx, app).assembled == 0
    with node.ctx.sessions.begin() as session:  # last updated longer ago than max_wait
        session.scalar(select(Mpps)).updated_at = datetime.now(UTC) - timedelta(seconds=601)
    assert sweep(node.ctx, app).assembled == 1
    assert node.study(study_uid).state == StudyState.READY
    with node.ctx.sessions() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.action == "assemble"))
    assert event.actor == "sweeper" and event.details["forced"] is True
