from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from typer.testing import CliRunner

from cli.main import app
from inference.encode.validate import dciodvfy_errors
from inference.measure import measure_axes
from phantom.node import node_mask
from phantom.study import ROLES, write_phantom_study

SMALL = {"rows": 96, "cols": 128, "cine_frames": 8, "ceus_frames": 6}


def test_write_phantom_study_four_series_one_study_all_synthetic(tmp_path: Path) -> None:
    paths, truth = write_phantom_study(tmp_path, 7, True, **SMALL)

    datasets = {p.stem: pydicom.dcmread(p) for p in paths}
    assert set(datasets) == set(ROLES)
    assert {ds.StudyInstanceUID for ds in datasets.values()} == {truth.study_instance_uid}
    assert len({ds.SeriesInstanceUID for ds in datasets.values()}) == 4
    for ds in datasets.values():
        assert str(ds.PatientName) == "SYNTHETIC^PHANTOM"
        assert "SYNTHETIC" in ds.ImageComments
    assert datasets["ceus"].SeriesDescription == "CEUS"
    assert int(datasets["cine"].NumberOfFrames) == 8
    assert truth.sop_instance_uids == {r: str(ds.SOPInstanceUID) for r, ds in datasets.items()}


def test_write_phantom_study_same_seed_same_bytes(tmp_path: Path) -> None:
    first, _ = write_phantom_study(tmp_path / "a", 3, False, **SMALL)
    second, _ = write_phantom_study(tmp_path / "b", 3, False, **SMALL)

    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_write_phantom_study_optional_series_left_out(tmp_path: Path) -> None:
    paths, truth = write_phantom_study(
        tmp_path, 1, False, with_doppler=False, with_cine=False, with_ceus=False, **SMALL
    )

    assert [p.name for p in paths] == ["bmode.dcm"]
    assert set(truth.files) == {"bmode"}


def test_write_phantom_study_truth_measurements_and_json(tmp_path: Path) -> None:
    _, benign = write_phantom_study(tmp_path / "b", 2, False, **SMALL)
    _, malignant = write_phantom_study(tmp_path / "m", 2, True, **SMALL)

    assert benign.short_to_long_ratio < 0.56
    assert malignant.short_to_long_ratio > 0.69
    assert benign.long_axis_mm == pytest.approx(benign.node.long_axis_mm)
    assert json.loads(malignant.to_json())["malignant"] is True


def test_write_phantom_study_every_file_passes_dciodvfy(tmp_path: Path) -> None:
    paths, _ = write_phantom_study(tmp_path, 5, True, **SMALL)

    assert {p.name: dciodvfy_errors(p) for p in paths} == {p.name: [] for p in paths}


def test_cli_phantom_writes_studies_with_hidden_truth(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["phantom", str(tmp_path / "out"), "--studies", "2", "--no-cine", "--no-ceus", "--json"],
    )

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["malignant"] for row in rows] == [False, True]
    for row in rows:
        folder = Path(row["folder"])
        assert sorted(p.name for p in folder.glob("*.dcm")) == ["bmode.dcm", "doppler.dcm"]
        assert json.loads((folder / ".truth.json").read_text())["study_instance_uid"]


@pytest.mark.parametrize("malignant", [False, True])
def test_phantom_truth_mask_measured_as_truth_axes_in_mm(tmp_path: Path, malignant: bool) -> None:
    paths, truth = write_phantom_study(
        tmp_path,
        6,
        malignant,
        with_doppler=False,
        with_cine=False,
        with_ceus=False,
        rows=192,
        cols=256,
        mm_per_pixel=0.08,
    )
    header = pydicom.dcmread(paths[0], stop_before_pixels=True)

    measured, note = measure_axes(node_mask(truth.node, 192, 256), header)

    assert note is None and measured is not None
    assert measured.long_axis_mm == pytest.approx(truth.long_axis_mm, rel=0.03)
    assert measured.short_axis_mm == pytest.approx(truth.short_axis_mm, rel=0.05)
    assert measured.short_to_long_ratio == pytest.approx(truth.short_to_long_ratio, rel=0.06)


def test_ambiguous_node_same_bmode_either_label_sign_in_doppler_cine_ceus() -> None:
    from phantom.study import phantom_datasets

    options = {"rows": 96, "cols": 128, "cine_frames": 9, "ceus_frames": 6, "ambiguous": True}
    benign, _ = phantom_datasets(7, False, **options)  # type: ignore[arg-type]
    malignant, node = phantom_datasets(7, True, **options)  # type: ignore[arg-type]
    assert node.ambiguous and node.malignant and not node.looks_malignant
    assert benign["bmode"].PixelData == malignant["bmode"].PixelData
    assert benign["doppler"].PixelData != malignant["doppler"].PixelData
    cine_b, cine_m = benign["cine"].pixel_array, malignant["cine"].pixel_array
    assert (cine_b[0] == cine_m[0]).all() and (cine_b[-1] == cine_m[-1]).all()
    assert not (cine_b[4] == cine_m[4]).all()  # the sign: in the middle of the sweep only
    assert benign["ceus"].PixelData != malignant["ceus"].PixelData
    assert benign["bmode"].BodyPartExamined == "NECK"


def test_cli_phantom_pathology_csv_in_labels_import_format(tmp_path: Path) -> None:
    from training.pathology_labels import read_label_file

    labels = tmp_path / "pathology.csv"
    result = CliRunner().invoke(app, ["phantom", str(tmp_path / "out"), "--studies", "2",
                                      "--no-cine", "--no-ceus", "--pathology-csv", str(labels)])  # fmt: skip
    assert result.exit_code == 0, result.output
    records = read_label_file(labels)
    truths = [json.loads(p.read_text()) for p in sorted((tmp_path / "out").glob("*/.truth.json"))]
    assert [(r.uid, r.outcome.value) for r in records] == [
        (t["study_instance_uid"], "metastatic" if t["malignant"] else "benign") for t in truths
    ]
    inside = CliRunner().invoke(app, ["phantom", str(tmp_path / "out"), "--pathology-csv",
                                      str(tmp_path / "out" / "p.csv")])  # fmt: skip
    assert inside.exit_code != 0


def test_cli_phantom_body_part_labels_every_instance_and_stays_valid(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["phantom", str(tmp_path / "out"), "--studies", "1",
                                      "--body-part", "axilla", "--no-cine", "--no-ceus"])
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(files) == 2
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.BodyPartExamined == "AXILLA"
        assert ds.StudyDescription == "SYNTHETIC PHANTOM - AXILLA"
        assert dciodvfy_errors(path) == []
