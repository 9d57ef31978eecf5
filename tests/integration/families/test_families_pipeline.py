"""Several model families on phantom studies: real SCP in, process_job, real Orthanc out.

Two studies arrive through the node's SCP: one with B-mode, colour Doppler, cine and CEUS, one
with B-mode and cine only. Four models are enabled (segcls, dual, video, ceus). Each job
delivers its own SR naming its model and version; only the segmenting model sends a SEG; the
dual and CEUS models skip the second study (input missing) and deliver a "not run" SR instead.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from db.models import AuditEvent, Job, JobState, Study
from inference.encode.validate import dciodvfy_errors, dsrdump_errors
from phantom.study import write_phantom_study
from pipeline.celery_app import make_celery
from pipeline.process import Outcome, process_job
from pipeline.serve import prepare
from pipeline.skip import NOT_RUN
from pipeline.sweeper import sweep
from tests.integration.families.conftest import enable_all
from tests.integration.pipeline.conftest import make_settings, receive
from tests.support.network import free_port
from tests.support.orthanc import start_orthanc
from tests.support.sr_content import content_items

pytestmark = pytest.mark.integration

SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
SMALL = {"rows": 128, "cols": 160, "cine_frames": 20, "ceus_frames": 10}
RATIO_CODE = "118586006"


def _text(items: list[pydicom.Dataset], meaning: str) -> list[str]:
    return [
        str(i.TextValue)
        for i in items
        if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeMeaning == meaning
    ]


def _jobs(ctx) -> dict[tuple[str, str], Job]:  # type: ignore[no-untyped-def]
    with ctx.sessions() as session:
        rows = session.execute(select(Job, Study.study_instance_uid).join(Study)).all()
        return {(uid, job.model_key): job for job, uid in rows}


def test_families_phantom_studies_one_sr_per_model_seg_only_segcls_skips_delivered(
    tmp_path: Path, family_models_dir: Path
) -> None:
    full, full_truth = write_phantom_study(tmp_path / "full", 11, True, **SMALL)
    bare, bare_truth = write_phantom_study(
        tmp_path / "bare", 12, False, with_doppler=False, with_ceus=False, **SMALL
    )
    pacs = start_orthanc(tmp_path / "orthanc")
    try:
        settings = make_settings(
            tmp_path / "home", family_models_dir, destinations=[pacs.destination]
        )
        ctx = prepare(settings)
        assert len(enable_all(ctx.sessions)) == 4
        receive(ctx, full)
        receive(ctx, bare)
        assert sweep(ctx, make_celery(settings)).jobs_created == 8

        outcomes = {key: process_job(ctx, job.id) for key, job in _jobs(ctx).items()}

        a, b = full_truth.study_instance_uid, bare_truth.study_instance_uid
        skipped = {(b, "tiny-dual"), (b, "tiny-ceus")}
        assert {k for k, o in outcomes.items() if o is Outcome.SKIPPED} == skipped
        assert all(o is Outcome.DELIVERED for k, o in outcomes.items() if k not in skipped)
        jobs = _jobs(ctx)
        assert {k for k, j in jobs.items() if j.state == JobState.SKIPPED} == skipped
        assert "no colour Doppler image" in (jobs[(b, "tiny-dual")].reason or "")
        assert "no contrast-enhanced (CEUS) cine" in (jobs[(b, "tiny-ceus")].reason or "")
        assert all(jobs[k].outputs[NOT_RUN] for k in skipped)

        stored = {}
        for orthanc_id in pacs.instance_ids():
            data = pacs.get_bytes(f"/instances/{orthanc_id}/file")
            path = tmp_path / "fetched" / f"{orthanc_id}.dcm"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            stored[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
        for key, job in jobs.items():
            sr_path = stored[job.outputs["sop_instance_uids"]["sr"]]
            sr = pydicom.dcmread(sr_path)
            items = content_items(sr)
            assert sr.StudyInstanceUID == key[0]
            assert _text(items, "Algorithm Name") == [job.model_key]
            assert _text(items, "Algorithm Version") == [job.model_version]
            assert dciodvfy_errors(sr_path) == []
            roles = set(job.outputs["sop_instance_uids"])
            if key in skipped:
                assert roles == {"sr"}
                comments = " ".join(_text(items, "Comment"))
                assert "was not run" in comments and "Reason: no " in comments
                assert dsrdump_errors(sr_path) == []
            else:
                assert "heatmap" in roles
                assert ("seg" in roles) == (job.model_key == "tiny-ynet")
                assert all(uid in stored for uid in job.outputs["sop_instance_uids"].values())
        segs = [p for p in stored.values() if pydicom.dcmread(p).SOPClassUID == SEG_CLASS]
        assert len(segs) == 2
        assert {pydicom.dcmread(p).SegmentSequence[0].SegmentAlgorithmName for p in segs} == {
            "tiny-ynet"
        }
        ynet_sr = pydicom.dcmread(stored[jobs[(a, "tiny-ynet")].outputs["sop_instance_uids"]["sr"]])
        codes = {
            i.ConceptNameCodeSequence[0].CodeValue
            for i in content_items(ynet_sr)
            if "ConceptNameCodeSequence" in i
        }
        assert {"103339001", "103340004", RATIO_CODE} <= codes  # long, short axis, S/L ratio
    finally:
        pacs.stop()


def test_families_skipped_job_pacs_down_then_up_ends_skipped_with_sr_sent(
    tmp_path: Path, family_models_dir: Path
) -> None:
    orthanc_port = free_port()
    settings = make_settings(
        tmp_path / "home",
        family_models_dir,
        destinations=[f"ORTHANC@127.0.0.1:{orthanc_port}"],
        default_model="tiny-dual",
    )
    ctx = prepare(settings)
    paths, _ = write_phantom_study(
        tmp_path / "study", 13, True, with_doppler=False, with_cine=False, with_ceus=False, **SMALL
    )
    receive(ctx, paths)
    sweep(ctx, make_celery(settings))
    job = next(iter(_jobs(ctx).values()))
    assert job.model_key == "tiny-dual"

    assert process_job(ctx, job.id) is Outcome.DELIVERY_PENDING
    pending = next(iter(_jobs(ctx).values()))
    assert pending.state == JobState.ENCODED and pending.outputs[NOT_RUN]

    pacs = start_orthanc(tmp_path / "orthanc", dicom_port=orthanc_port)
    try:
        later = ctx.clock() + timedelta(hours=2)
        ctx.clock = lambda: later
        assert sweep(ctx, make_celery(settings)).enqueued == 1
        assert process_job(ctx, job.id) is Outcome.SKIPPED
        done = next(iter(_jobs(ctx).values()))
        assert done.state == JobState.SKIPPED and "no colour Doppler image" in (done.reason or "")
        with ctx.sessions() as session:  # SKIPPED in one step: never DELIVERED on the way
            actions = list(session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.entity == "job", AuditEvent.entity_id == str(job.id))
                .order_by(AuditEvent.id)
            ))  # fmt: skip
        assert actions[-1] == "skipped" and "delivered" not in actions, actions
        stored = {
            pacs.get_json(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"]
            for i in pacs.instance_ids()
        }
        assert stored == {done.outputs["sop_instance_uids"]["sr"]}
    finally:
        pacs.stop()
