"""Dataset manifests: hashes, group-level folds, ddti column mapping, DICOM files with labels."""

from __future__ import annotations

import json
from pathlib import Path

from db.labels import LabelRecord
from db.models import LabelLevel, PathologyOutcome
from kernel.patient import patient_key
from phantom.us_dicom import write_us_study
from training.datasets import DDTI_COLUMNS, detect_columns, read_image_folder
from training.groups import GroupKey
from training.manifest import (
    build_manifest,
    from_dicom_files,
    from_image_folder,
    manifest_arrays,
    verify_manifest,
    write_manifest,
)

KEY = GroupKey(b"site secret")


def test_build_manifest_image_folder_groups_in_one_fold(image_folder: Path, tmp_path: Path) -> None:
    manifest = build_manifest(from_image_folder(image_folder), "tiny", k=2, seed=1)
    folds_of_group: dict[str, set[int]] = {}
    for row in manifest["rows"]:
        folds_of_group.setdefault(row["group"], set()).add(row["fold"])
        assert len(row["sha256"]) == 64 and row["mask_sha256"]
    assert all(len(folds) == 1 for folds in folds_of_group.values())
    assert {row["fold"] for row in manifest["rows"]} == {0, 1}
    balance = manifest["fold_balance"]  # 12 images, 2 folds: under 5 of a class in some fold
    assert sum(f["positive"] + f["negative"] for f in balance["folds"]) == 12
    assert balance["thin_folds"] and "fewer than 5 positive or negative" in balance["warning"]
    path = write_manifest(manifest, tmp_path)
    assert json.loads(path.read_text())["n"] == 12 and (tmp_path / "manifest.csv").is_file()
    assert verify_manifest(manifest) == []
    assert manifest_arrays(manifest, 32).images.shape == (12, 32, 32)


def test_read_image_folder_ddti_columns_mapped(image_folder: Path, ddti_folder: Path) -> None:
    assert detect_columns(["image", "mask", "case", "tirads_binary"]) == DDTI_COLUMNS
    read = read_image_folder(ddti_folder)
    assert [r.group for r in read[:4]] == ["0", "0", "0", "1"]
    assert [r.malignant for r in read] == [r.malignant for r in read_image_folder(image_folder)]


def test_from_dicom_files_instance_label_wins_unlabelled_counted(tmp_path: Path) -> None:
    labelled = write_us_study(tmp_path / "a", seed=1, count=2)
    other = write_us_study(tmp_path / "b", seed=2, count=1)
    import pydicom

    study = str(pydicom.dcmread(labelled[0]).StudyInstanceUID)
    instance = str(pydicom.dcmread(labelled[1]).SOPInstanceUID)
    labels = [
        LabelRecord(LabelLevel.STUDY, study, PathologyOutcome.METASTATIC, None, None),
        LabelRecord(LabelLevel.INSTANCE, instance, PathologyOutcome.BENIGN, None, None),
    ]
    notes = tmp_path / "b" / ".truth.json"  # what a folder of studies also holds
    notes.write_text("{}")
    lost = LabelRecord(LabelLevel.SERIES, "1.2.826.9", PathologyOutcome.BENIGN, None, None)
    rows, unlabelled, left_out = from_dicom_files([*labelled, *other, notes], [*labels, lost], KEY)
    assert [r.malignant for r in rows] == [1, 0] and unlabelled == 1
    other_study = str(pydicom.dcmread(other[0]).StudyInstanceUID)
    assert left_out.studies_without_label == (other_study,)
    assert left_out.labels_without_study == (("series", "1.2.826.9"),)
    header = pydicom.dcmread(labelled[0])
    assert rows[0].kind == "dicom" and rows[0].group == KEY.pseudonym(patient_key(header))
    write_manifest(build_manifest(rows, "t", k=2, seed=0, left_out=left_out), tmp_path / "ds")
    written = json.loads((tmp_path / "ds" / "manifest.json").read_text())["left_out"]
    assert written["studies_without_label"] == {"n": 1, "uids": [other_study]}
    for written in ("manifest.json", "manifest.csv"):  # the PatientID was the group, in clear
        text = (tmp_path / "ds" / written).read_text()
        assert str(header.PatientID) not in text
        assert patient_key(header) not in text  # a plain hash of the ID: recomputable by anyone


def test_from_dicom_files_without_patient_id_grouped_by_study(tmp_path: Path) -> None:
    import pydicom

    (path,) = write_us_study(tmp_path / "a", seed=3, count=1)
    header = pydicom.dcmread(path)
    header.PatientID = ""
    header.save_as(path)
    label = LabelRecord(LabelLevel.STUDY, str(header.StudyInstanceUID), PathologyOutcome.BENIGN,
                        None, None)  # fmt: skip
    rows, _, _ = from_dicom_files([path], [label], KEY)
    assert [r.group for r in rows] == [str(header.StudyInstanceUID)]
