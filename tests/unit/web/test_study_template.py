"""The study page's report as rendered from our SR: the words are the SR's and the spec's."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader

from db import views
from tests.support.predictions import lesion_spec, model_spec
from web.formatting import register_filters
from web.report import read_report
from web.study import JobView

TEMPLATES = Path(__file__).resolve().parents[3] / "web" / "templates"


def _page(written) -> str:  # type: ignore[no-untyped-def]
    now = datetime(2026, 1, 1, 12, 0, 0)
    job = views.JobRow(
        job_id=7, study_id=1, study_instance_uid=str(written.source.StudyInstanceUID),
        model="ynet-busi@1.0.0", generation=1, state="DELIVERED", attempts=1, probability=0.8,
        reason=None, created_at=now, updated_at=now,
        files={role: str(path) for role, path in written.files.items()},
    )
    study = views.StudyRow(1, job.study_instance_uid, "DONE", now, now, 1, 1)
    detail = views.StudyDetail(study=study, series=[], jobs=[job])
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True)
    register_filters(environment)
    context = {"user": "reader", "ae_title": "LNMNODE", "detail": detail, "header": {},
               "jobs": [JobView(job, read_report(written.files["sr"]), None)],
               "request": None, "url_for": lambda *a, **k: ""}
    return environment.get_template("study.html").render(context)


def test_study_page_lesion_spec_reads_lesion_breast_and_the_call(written_outputs) -> None:  # type: ignore[no-untyped-def]
    page = _page(written_outputs(spec=lesion_spec()))
    assert "Lesion, Breast" in page and "Lesion 1" in page
    assert "Malignant neoplastic disease: present (threshold 28.5 %)" in page
    assert 'class="probability">80.0 %<' in page
    assert "Lymph node" not in page and "Metastasis" not in page


def test_study_page_states_the_operating_point_and_calibration(written_outputs) -> None:  # type: ignore[no-untyped-def]
    spec = model_spec(
        threshold=0.31,
        calibration={"method": "temperature", "temperature": 1.45, "fitted_on": "validation"},
        operating_point={"policy": "sensitivity=0.90", "chosen_on": "validation"},
    )
    page = _page(written_outputs(spec=spec))
    assert (
        'class="operating-point">sensitivity=0.90; probability calibrated: temperature T=1.45<'
        in page
    )
    assert "operating-point" not in _page(written_outputs(spec=lesion_spec(), frames=2))
