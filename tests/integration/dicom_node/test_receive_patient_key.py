"""The receive stage records each instance's patient key on its row (C-STORE into the SCP), so
the one-patient rule counts patients in the database instead of re-reading every file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import select

from db.instances import patient_key_count
from db.models import Instance, Study
from dicom_node.scu import send_instances
from kernel.patient import patient_key
from phantom.us_dicom import write_us_study
from tests.integration.dicom_node.helpers import CALLING_AE, Node
from tests.support.databases import database_url

pytestmark = pytest.mark.integration

#: (PatientID, IssuerOfPatientID) of each instance of the study: two patients
PATIENTS = [("PAT-A", "HOSP"), (" PAT-A", "HOSP "), ("PAT-A", "CLINIC")]


def _study(folder: Path) -> list[Path]:
    paths = write_us_study(folder, seed=31, count=len(PATIENTS), rows=48, cols=64)
    for path, (patient_id, issuer) in zip(paths, PATIENTS, strict=True):
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.IssuerOfPatientID = patient_id, issuer
        ds.save_as(path, enforce_file_format=True)
    return paths


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_scp_c_store_records_patient_key_on_instance_row(
    make_node: Callable[..., Node], tmp_path: Path, kind: str
) -> None:
    paths = _study(tmp_path / "study")
    with database_url(kind, tmp_path) as url:
        node = make_node(**({} if kind == "sqlite" else {"database_url": url}))
        statuses = send_instances(node.destination, paths, CALLING_AE)
        assert list(statuses.values()) == [0x0000] * len(paths)

        with node.sessions() as session:
            rows = dict(
                session.execute(select(Instance.sop_instance_uid, Instance.patient_key))
                .tuples()
                .all()
            )
            study_id = session.scalars(select(Study.id)).one()
            counted = patient_key_count(session, study_id)
            every_value = repr(session.execute(select(Instance.__table__)).all())
        node.sessions.kw["bind"].dispose()

    expected = {}
    for path in paths:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        expected[str(header.SOPInstanceUID)] = patient_key(header)
    assert rows == expected
    assert len(set(rows.values())) == 2  # spaces do not make a patient, another issuer does
    assert counted == (2, 0)  # two patients, every row keyed
    assert "PAT-A" not in every_value and "HOSP" not in every_value  # no identifier in clear
