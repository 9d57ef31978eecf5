"""The "not run" SR of a skipped model, through dciodvfy, dsrdump and pixelmed."""

from __future__ import annotations

import time
from pathlib import Path

import highdicom as hd
import pydicom
import pytest

from inference.encode.not_run import NOT_RUN_TRACKING_ID, build_not_run_outputs
from inference.encode.validate import dciodvfy_errors, dsrdump_errors, pixelmed_sr_errors
from phantom.study import write_phantom_study

pytestmark = pytest.mark.integration

REASON = "no colour Doppler image in the study (1 instance(s) read: 1 grey-scale)"


def _texts(dataset: pydicom.Dataset) -> list[str]:
    found = []
    for item in dataset.get("ContentSequence", []):
        if item.ValueType == "TEXT":
            found.append(str(item.TextValue))
        found.extend(_texts(item))
    return found


def _write_not_run(folder: Path, source: pydicom.Dataset) -> Path:
    outputs = build_not_run_outputs(
        model_key="tiny-dual",
        model_name="Tiny dual (test)",
        model_version="0.1.0",
        reason=REASON,
        source=source,
        job_id=41,
        numbers={"score": 0.1234567, "threshold": 0.5},
    )
    path = folder / "not-run-sr.dcm"
    outputs["sr"].save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def bmode(tmp_path_factory: pytest.TempPathFactory) -> pydicom.Dataset:
    folder = tmp_path_factory.mktemp("not-run-source")
    paths, _ = write_phantom_study(
        folder, 2, False, with_doppler=False, with_cine=False, with_ceus=False, rows=64, cols=80
    )
    return pydicom.dcmread(paths[0])


def test_not_run_sr_names_model_version_and_reason(tmp_path: Path, bmode: pydicom.Dataset) -> None:
    path = _write_not_run(tmp_path, bmode)
    sr = hd.sr.srread(path)

    texts = _texts(sr)
    assert "tiny-dual" in texts and "0.1.0" in texts  # algorithm name and version
    assert any("was not run" in t and "tiny-dual 0.1.0" in t for t in texts)
    assert f"Reason: {REASON}" in texts
    assert NOT_RUN_TRACKING_ID in texts
    assert sr.StudyInstanceUID == bmode.StudyInstanceUID
    assert "score: 0.1235" in texts and "threshold: 0.5" in texts
    assert sr.SeriesDescription == "SR AI tiny-dual@0.1.0"
    assert sr.ContributingEquipmentSequence[-1].SoftwareVersions == "0.1.0"


def test_not_run_sr_asserts_no_finding(tmp_path: Path, bmode: pydicom.Dataset) -> None:
    sr = pydicom.dcmread(_write_not_run(tmp_path, bmode))
    assert "Lymph node" not in str(sr)
    assert "121071" not in str(sr)  # no Finding item at all


def test_not_run_sr_passes_dciodvfy_dsrdump_pixelmed(
    tmp_path: Path, bmode: pydicom.Dataset
) -> None:
    path = _write_not_run(tmp_path, bmode)

    assert dciodvfy_errors(path) == []
    assert dsrdump_errors(path) == []
    assert pixelmed_sr_errors(path) == []
    assert pydicom.dcmread(path).TimezoneOffsetFromUTC == time.strftime("%z")  # its local times


def test_not_run_sr_from_non_image_header_passes_dciodvfy(
    tmp_path: Path, bmode: pydicom.Dataset
) -> None:
    header = pydicom.Dataset()
    for keyword in ("StudyInstanceUID", "PatientName", "PatientID", "StudyDate", "StudyTime"):
        setattr(header, keyword, bmode.get(keyword))
    header.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"  # an Enhanced SR the modality sent
    header.SOPInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["not-run-sr-source"])
    header.SeriesInstanceUID = pydicom.uid.generate_uid(entropy_srcs=["not-run-sr-series"])
    header.Modality = "SR"

    path = _write_not_run(tmp_path, header)

    assert dciodvfy_errors(path) == []
    assert dsrdump_errors(path) == []
