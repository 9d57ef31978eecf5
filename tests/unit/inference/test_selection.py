from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEGBaseline8Bit, generate_uid

from inference.registry import SelectionRule
from inference.selection import rank_bmode, read_headers, select_bmode, select_input
from kernel.errors import InvalidInput
from phantom.us_dicom import SECONDARY_CAPTURE_STORAGE, make_us_dataset

STUDY = generate_uid(entropy_srcs=["selection-study"])


def _write(folder: Path, name: str, **kwargs: object) -> Path:
    kwargs = {"rows": 32, "cols": 48, "study_instance_uid": STUDY, **kwargs}
    ds, _, _ = make_us_dataset(**kwargs)  # type: ignore[arg-type]
    path = folder / f"{name}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _sr(folder: Path) -> Path:
    ds, _, _ = make_us_dataset(seed=99, rows=8, cols=8)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"
    ds.Modality = "SR"
    del ds.PixelData
    path = folder / "sr.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_select_bmode_single_frame_preferred_over_cine(tmp_path: Path) -> None:
    cine = _write(tmp_path, "cine", seed=1, frames=5, instance_number=1)
    single = _write(tmp_path, "single", seed=2, instance_number=2)

    selection = select_bmode([cine, single])

    assert selection.path == single
    assert selection.frame_index == 0
    assert selection.frame.shape == (32, 48)


def test_select_bmode_cine_only_takes_middle_frame(tmp_path: Path) -> None:
    cine = _write(tmp_path, "cine", seed=1, frames=5, rgb=True, transfer_syntax=JPEGBaseline8Bit)

    selection = select_bmode([cine])

    assert selection.frame_index == 2
    assert selection.frame.shape == (32, 48, 3)
    assert "PixelData" not in selection.dataset


def test_select_bmode_order_is_series_instance_uid_not_input_order(tmp_path: Path) -> None:
    second = _write(tmp_path, "b", seed=1, instance_number=2)
    first = _write(tmp_path, "a", seed=2, instance_number=1)

    assert select_bmode([second, first]).path == first
    assert select_bmode([first, second]).path == first


def test_select_bmode_secondary_capture_of_modality_us_accepted(tmp_path: Path) -> None:
    capture = _write(tmp_path, "sc", seed=1, sop_class_uid=SECONDARY_CAPTURE_STORAGE)

    assert select_bmode([capture]).path == capture


def test_select_bmode_secondary_capture_other_modality_rejected(tmp_path: Path) -> None:
    ds, _, _ = make_us_dataset(seed=1, rows=16, cols=16, sop_class_uid=SECONDARY_CAPTURE_STORAGE)
    ds.Modality = "OT"
    path = tmp_path / "ot.dcm"
    ds.save_as(path, enforce_file_format=True)

    with pytest.raises(InvalidInput, match="secondary capture not of modality US"):
        select_bmode([path])


def test_select_bmode_retired_us_class_accepted(tmp_path: Path) -> None:
    retired = _write(
        tmp_path, "retired", seed=1, sop_class_uid=pydicom.uid.UID("1.2.840.10008.5.1.4.1.1.6")
    )

    assert select_bmode([retired]).path == retired


def test_select_bmode_undecodable_first_candidate_falls_back(tmp_path: Path) -> None:
    broken = _write(tmp_path, "broken", seed=1, instance_number=1)
    ds = pydicom.dcmread(broken)
    ds.PixelData = ds.PixelData[:10]
    ds.save_as(broken, enforce_file_format=True)
    good = _write(tmp_path, "good", seed=2, instance_number=2)

    assert select_bmode([broken, good]).path == good


def test_select_bmode_nothing_usable_raises_with_reasons(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00" * 64)

    with pytest.raises(
        InvalidInput,
        match=r"no B-mode image in the study \(1 instance\(s\) read: 1 not an ultrasound image",
    ):
        select_bmode([_sr(tmp_path), junk])


def test_select_bmode_empty_study_raises_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="no B-mode image in the study"):
        select_bmode([])


def test_select_input_bmode_rule_dispatches(tmp_path: Path) -> None:
    path = _write(tmp_path, "single", seed=1)

    assert select_input([path], SelectionRule.BMODE).path == path


def test_rank_bmode_reads_headers_only(tmp_path: Path) -> None:
    paths = [_write(tmp_path, "single", seed=1), _sr(tmp_path)]

    candidates, rejected = rank_bmode(read_headers(paths))

    assert [p for p, _ in candidates] == [paths[0]]
    assert all("PixelData" not in header for _, header in candidates)
    assert sum(rejected.values()) == 1


@pytest.mark.shared_data
def test_select_bmode_real_study_prefers_single_frame(shared_data: Path) -> None:
    folder = shared_data / "us-dicom" / "pydicom_data"
    paths = sorted(folder.glob("*.dcm"))

    selection = select_bmode(paths)

    assert int(selection.dataset.get("NumberOfFrames", 1) or 1) == 1
    assert selection.frame.shape[:2] == (selection.dataset.Rows, selection.dataset.Columns)
    assert np.isfinite(selection.frame).all()
