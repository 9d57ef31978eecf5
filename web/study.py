"""The study page (login required): patient and study header, and for each job the image with
the node outline, the heatmap and the SR read as a report."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pydicom
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParameter
from fastapi.responses import Response
from pydicom.errors import InvalidDicomError
from sqlalchemy.orm import Session

from db import jobs as job_queries
from db import views
from kernel.errors import InvalidInput
from web import render
from web.auth import require_user
from web.deps import db_session
from web.report import Finding, ReadableReport, read_report

log = logging.getLogger(__name__)
router = APIRouter(dependencies=[Depends(require_user)])
DbSession = Annotated[Session, Depends(db_session)]
User = Annotated[str, Depends(require_user)]
#: a database row id: a positive integer that fits the BIGINT column (larger is a 422, not a 500)
RowId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]

#: what can go wrong reading one of our own files back (gone from the spool, or damaged)
_READ_ERRORS = (OSError, InvalidDicomError, ValueError, AttributeError, KeyError, IndexError)
_HEADER_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                "StudyTime", "StudyDescription", "AccessionNumber", "StudyID")


@dataclass(frozen=True)
class JobView:
    job: views.JobRow
    report: ReadableReport | None
    problem: str | None

    @property
    def finding(self) -> Finding | None:
        return self.report.findings[0] if self.report and self.report.findings else None


def _header(paths: list[str]) -> dict[str, str]:
    """What identifies the patient and study, from the first readable received instance."""
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_HEADER_TAGS))
        except _READ_ERRORS:
            continue
        return {tag: str(ds.get(tag, "") or "") for tag in _HEADER_TAGS}
    return {}


def _job_view(job: views.JobRow) -> JobView:
    sr = job.files.get("sr")
    if sr is None:
        return JobView(job, None, None)
    try:
        return JobView(job, read_report(Path(sr)), None)
    except _READ_ERRORS as exc:
        log.warning("SR unreadable", extra={"job_id": job.job_id, "error": type(exc).__name__})
        return JobView(job, None, "the SR is no longer in the spool or cannot be read")


@router.get("/studies/{study_id}")
def study_page(request: Request, study_id: RowId, session: DbSession, user: User) -> Response:
    detail = views.study_detail(session, study_id)
    if detail is None:
        raise HTTPException(404, "no such study")
    header = _header(job_queries.study_instance_paths(session, study_id))
    settings = request.app.state.settings
    return request.app.state.templates.TemplateResponse(
        request, "study.html",
        {"user": user, "ae_title": settings.ae_title, "detail": detail, "header": header,
         "jobs": [_job_view(job) for job in detail.jobs]},
    )


def _job_file(session: Session, job_id: int, role: str) -> tuple[views.JobRow, Path]:
    job = views.job_row(session, job_id)
    if job is None or role not in job.files:
        raise HTTPException(404, f"job has no {role}")
    path = Path(job.files[role])
    if not path.is_file():
        raise HTTPException(404, f"the {role} is no longer in the spool")
    return job, path


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png")


@router.get("/jobs/{job_id}/image.png")
def job_image(job_id: RowId, session: DbSession) -> Response:
    """The source frame the SR refers to, with the node outline (SEG, else SR polygon) and
    the long and short axis where the node measured."""
    job, sr_path = _job_file(session, job_id, "sr")
    try:
        report = read_report(sr_path)
    except _READ_ERRORS as exc:
        raise HTTPException(404, "the SR cannot be read") from exc
    finding = report.findings[0] if report.findings else None
    if finding is None or finding.source_sop_instance_uid is None:
        raise HTTPException(404, "the SR references no image")
    source = views.instance_path(session, finding.source_sop_instance_uid)
    if source is None or not Path(source).is_file():
        raise HTTPException(404, "the source image is no longer in the spool")
    try:
        image = render.source_frame(Path(source), finding.source_frame_number)
    except InvalidInput as exc:
        raise HTTPException(404, "the source frame cannot be decoded") from exc
    seg = Path(job.files["seg"]) if "seg" in job.files else None
    mask = None
    if seg is not None and seg.is_file():
        try:
            mask = render.seg_mask(seg, finding.source_sop_instance_uid)
        except _READ_ERRORS as exc:
            log.warning("SEG unreadable", extra={"job_id": job_id, "error": type(exc).__name__})
    if mask is not None and mask.shape == image.shape[:2]:
        image = render.draw_mask_outline(image, mask)
    elif finding.outline:
        image = render.draw_polyline(image, finding.outline)
    for axis in finding.axes:
        image = render.draw_polyline(image, axis)
    return _png(render.png_bytes(image))


@router.get("/jobs/{job_id}/heatmap.png")
def job_heatmap(job_id: RowId, session: DbSession) -> Response:
    """The heatmap object's pixels."""
    _job, path = _job_file(session, job_id, "heatmap")
    try:
        return _png(render.heatmap_png(path))
    except _READ_ERRORS as exc:
        raise HTTPException(404, "the heatmap cannot be read") from exc
