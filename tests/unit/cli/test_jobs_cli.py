"""`lnm-node jobs replay` through typer's runner: a refused replay changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from cli.main import app
from db.models import AuditEvent, Delivery, DeliveryState, Job, JobState, Study
from db.session import make_sessionmaker
from kernel.settings import load_settings
from phantom.us_dicom import write_us_study
from tests.support.network import free_port

runner = CliRunner()


def _delivered_job(home: Path, files: dict[str, str], destinations: list[str]) -> int:
    """A DELIVERED job of ``files``, SENT to each of ``destinations``; returns its id."""
    sessions = make_sessionmaker(load_settings(home=home).database_url)
    with sessions.begin() as session:
        study = Study(study_instance_uid="1.2.3")
        session.add(study)
        session.flush()
        job = Job(study_id=study.id, model_key="tiny-ynet", model_version="0.1.0",
                  state=JobState.DELIVERED, outputs={"files": files})  # fmt: skip
        session.add(job)
        session.flush()
        for destination in destinations:
            session.add(Delivery(job_id=job.id, destination=destination,
                                 state=DeliveryState.SENT, attempts=1))  # fmt: skip
        return job.id


def _deliveries_and_replays(home: Path) -> tuple[list[tuple[str, DeliveryState, int]], int]:
    with make_sessionmaker(load_settings(home=home).database_url)() as session:
        rows = [(d.destination, d.state, d.attempts)
                for d in session.scalars(select(Delivery).order_by(Delivery.id))]  # fmt: skip
        replays = session.scalars(select(AuditEvent).where(AuditEvent.action == "replay")).all()
    return rows, len(replays)


@pytest.mark.parametrize("why", ["files gone", "second destination unusable", "file not DICOM"])
def test_jobs_replay_refused_changes_no_delivery(tmp_path: Path, why: str) -> None:
    """Before, the delivery was reset to PENDING (and audited as replayed) and then the replay
    was refused: the files were checked, and each destination parsed, only after that. An
    output file that is not DICOM was found only while sending, after the delivery was reset:
    an ``InvalidInput`` traceback."""
    home = tmp_path / "home"
    (output,) = write_us_study(tmp_path / "outputs", seed=1, count=1)
    if why == "files gone":
        output.unlink()
        destinations = [f"PACS@127.0.0.1:{free_port()}"]
        told = f"refused: output files are gone: {output}"
    elif why == "file not DICOM":
        output.write_text("not a DICOM file")
        destinations = [f"PACS@127.0.0.1:{free_port()}"]
        told = (
            f"refused: output files that are not DICOM: {output} ({output.name} is not a DICOM file"
        )
    else:
        destinations = [f"PACS@127.0.0.1:{free_port()}", "not a destination"]
        told = "refused: destination 'not a destination'"
    job_id = _delivered_job(home, {"sr": str(output)}, destinations)
    before = _deliveries_and_replays(home)

    result = runner.invoke(app, ["jobs", "replay", str(job_id), "--home", str(home)],
                           env={"COLUMNS": "200"})  # fmt: skip

    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert told in result.output and len(result.output.splitlines()) == 1
    unchanged = ([(d, DeliveryState.SENT, 1) for d in destinations], 0)
    assert _deliveries_and_replays(home) == before == unchanged
