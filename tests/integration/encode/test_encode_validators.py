"""The encoders' outputs under the real validators: dciodvfy, dsrdump and pixelmed.

dciodvfy must report zero errors on every SEG, SR and heatmap, dsrdump must parse the SR and
pixelmed's SR validator must report zero errors (one run: it takes seconds).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEGBaseline8Bit, RLELossless

from inference.encode.outputs import build_outputs, segment_pixel_spacing
from inference.encode.sr import SRClass
from inference.encode.validate import dciodvfy_errors, dsrdump_errors, pixelmed_sr_errors
from inference.prediction import Call
from inference.regions import tissue_box
from phantom.us_dicom import US_IMAGE_STORAGE
from tests.support.predictions import lesion_spec, model_spec
from tests.support.sr_content import content_items, inferred_from

pytestmark = pytest.mark.integration

SHARED_US = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "us-dicom"
REAL_FILES = sorted(SHARED_US.resolve().glob("*/*.dcm")) if SHARED_US.is_dir() else []
PHANTOMS = {
    "grey": {},
    "rgb": {"rgb": True},
    "jpeg": {"rgb": True, "transfer_syntax": JPEGBaseline8Bit},
    "rle": {"transfer_syntax": RLELossless},
    "uncalibrated": {"mm_per_pixel": None},
    "cine": {"frames": 3},
    "retired-class": {"sop_class_uid": "1.2.840.10008.5.1.4.1.1.6"},
    # a single-frame class carrying 2 frames (a real Philips file does): referenced as a whole
    "two-frames-single-frame-class": {"frames": 2, "sop_class_uid": US_IMAGE_STORAGE},
}
_ILLEGAL_ROOT = re.compile(r'Illegal root for UID - "([0-9.]+)"')


def _need(program: str) -> None:
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed")


def _write(outputs, folder: Path) -> dict[str, Path]:
    paths = {}
    for role, dataset in outputs.items():
        path = folder / f"{role}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths[role] = path
    return paths


def _errors_not_from_source(errors: list[str], source) -> list[str]:
    """Drop errors about the source's own UIDs (an illegal root we must keep to stay linked)."""
    own = {
        str(source.get(k, "")) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    }
    kept = []
    for error in errors:
        match = _ILLEGAL_ROOT.search(error)
        if match and match.group(1) in own:
            continue
        kept.append(error)
    return kept


def _elliptical_mask(source) -> np.ndarray:
    x0, y0, x1, y1 = tissue_box(source)
    yy, xx = np.mgrid[0 : int(source.Rows), 0 : int(source.Columns)]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return ((xx - cx) / max((x1 - x0) / 6, 2)) ** 2 + ((yy - cy) / max((y1 - y0) / 8, 2)) ** 2 <= 1


@pytest.mark.parametrize("kind", list(PHANTOMS))
def test_outputs_phantom_source_dciodvfy_zero_errors(phantom, make_prediction, tmp_path, kind, spec):
    _need("dciodvfy")
    source, mask = phantom(seed=8, **PHANTOMS[kind])
    paths = _write(build_outputs(make_prediction(source, mask), source, 31, spec=spec), tmp_path)
    for role, path in paths.items():
        assert dciodvfy_errors(path) == [], role


def test_outputs_nothing_segmented_dciodvfy_and_dsrdump_clean(phantom, make_prediction, tmp_path, spec):
    _need("dciodvfy")
    _need("dsrdump")
    source, _ = phantom(seed=8)
    prediction = make_prediction(source, None, probability=0.1, call=Call.ABSENT)
    paths = _write(build_outputs(prediction, source, 32, spec=spec), tmp_path)
    for role, path in paths.items():
        assert dciodvfy_errors(path) == [], role
    assert dsrdump_errors(paths["sr"]) == []


@pytest.mark.parametrize("kind", ["grey", "cine"])
def test_outputs_sr_dsrdump_parses_without_error(phantom, make_prediction, tmp_path, kind, spec):
    _need("dsrdump")
    source, mask = phantom(seed=8, **PHANTOMS[kind])
    paths = _write(build_outputs(make_prediction(source, mask), source, 33, spec=spec), tmp_path)
    assert dsrdump_errors(paths["sr"]) == []


@pytest.mark.parametrize("kind", ["grey", "two-frames-single-frame-class"])
def test_outputs_sr_pixelmed_zero_errors(phantom, make_prediction, tmp_path, spec, kind):
    _need("java")
    if not Path("/usr/share/java/pixelmed.jar").is_file():
        pytest.skip("pixelmed-apps is not installed")
    source, mask = phantom(seed=8, **PHANTOMS[kind])
    paths = _write(build_outputs(make_prediction(source, mask), source, 34, spec=spec), tmp_path)
    assert pixelmed_sr_errors(paths["sr"]) == []


def test_outputs_lesion_spec_uncalibrated_sr_pixelmed_and_dciodvfy_zero_errors(
    phantom, make_prediction, tmp_path
):
    _need("java")
    _need("dciodvfy")
    if not Path("/usr/share/java/pixelmed.jar").is_file():
        pytest.skip("pixelmed-apps is not installed")
    source, mask = phantom(seed=8, **PHANTOMS["uncalibrated"])
    paths = _write(build_outputs(make_prediction(source, mask), source, 37, spec=lesion_spec()), tmp_path)
    assert pixelmed_sr_errors(paths["sr"]) == []
    for role, path in paths.items():
        assert dciodvfy_errors(path) == [], role


def test_outputs_operating_point_and_calibration_sr_pixelmed_and_dciodvfy_zero_errors(
    phantom, make_prediction, tmp_path
):
    _need("java")
    _need("dciodvfy")
    if not Path("/usr/share/java/pixelmed.jar").is_file():
        pytest.skip("pixelmed-apps is not installed")
    spec = model_spec(
        threshold=0.31,
        calibration={"method": "isotonic", "points": [(0.1, 0.0), (0.9, 1.0)], "fitted_on": "x"},
        operating_point={"policy": "specificity=0.90", "chosen_on": "inner validation"},
    )
    source, mask = phantom(seed=8)
    paths = _write(build_outputs(make_prediction(source, mask), source, 38, spec=spec), tmp_path)
    assert b"operating point=specificity=0.90" in paths["sr"].read_bytes()
    assert pixelmed_sr_errors(paths["sr"]) == []
    for role, path in paths.items():
        assert dciodvfy_errors(path) == [], role


@pytest.mark.parametrize(
    ("kind", "sr_class"),
    [
        ("grey", SRClass.COMPREHENSIVE_3D),
        ("cine", SRClass.COMPREHENSIVE_3D),
        ("grey", SRClass.COMPREHENSIVE),
    ],
    ids=["grey", "cine", "comprehensive-sr"],
)
def test_outputs_sr_axes_drawn_as_polylines_all_validators_zero_errors(
    phantom, make_prediction, tmp_path, spec, kind, sr_class
):
    """Each axis NUM is INFERRED FROM a 2-point POLYLINE on the source (on the outlined frame
    of a cine), and the SR stays clean under dciodvfy, dsrdump and pixelmed."""
    _need("java")
    _need("dciodvfy")
    _need("dsrdump")
    if not Path("/usr/share/java/pixelmed.jar").is_file():
        pytest.skip("pixelmed-apps is not installed")
    source, mask = phantom(seed=8, **PHANTOMS[kind])
    prediction = make_prediction(source, mask, frame_index=1 if kind == "cine" else 0)
    outputs = build_outputs(prediction, source, 39, spec=spec, sr_class=sr_class)
    for code in ("103339001", "103340004"):  # long axis, short axis
        (scoord,) = inferred_from(outputs["sr"], code)
        assert scoord.GraphicType == "POLYLINE" and len(scoord.GraphicData) == 4
        assert scoord.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
            source.SOPInstanceUID
        )
    paths = _write(outputs, tmp_path)
    assert pixelmed_sr_errors(paths["sr"]) == []
    assert dsrdump_errors(paths["sr"]) == []
    for role, path in paths.items():
        assert dciodvfy_errors(path) == [], role


def _dciodvfy_laterality_messages(path: Path) -> list[str]:
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return [line for line in (result.stdout + result.stderr).splitlines() if "Laterality" in line]


@pytest.mark.parametrize(
    ("keyword", "value"), [("Laterality", "R"), ("ImageLaterality", "L")]
)
def test_outputs_source_side_on_the_heatmap_dciodvfy_silent_on_laterality(
    phantom, make_prediction, tmp_path, spec, keyword, value
):
    """The heatmap carries the source's side as its series Laterality (it was empty, and
    dciodvfy warned "only permitted to be empty when actually unknown"). The SEG carries none:
    dciodvfy reports Laterality on a Segmentation as an error ("present when condition
    unsatisfied"), though pixelmed asks for it."""
    _need("dciodvfy")
    source, mask = phantom(seed=8)
    setattr(source, keyword, value)
    paths = _write(build_outputs(make_prediction(source, mask), source, 40, spec=spec), tmp_path)
    assert pydicom.dcmread(paths["heatmap"]).Laterality == value
    assert "Laterality" not in pydicom.dcmread(paths["seg"])
    for role, path in paths.items():
        assert dciodvfy_errors(path) == [], role
        assert _dciodvfy_laterality_messages(path) == [], role


@pytest.mark.parametrize(
    ("charset", "name"),
    [
        (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎"),
        (["", "ISO 2022 IR 149"], "Hong^Gildong=洪^吉洞"),
        ("ISO 2022 IR 100", "Müller^Jürgen"),
        ("ISO_IR 6", "Doe^Jane"),
    ],
    ids=["japanese", "korean", "latin1-code-extension", "iso-ir-6"],
)
def test_outputs_source_character_set_names_read_back_dciodvfy_zero_errors(
    phantom, make_prediction, roundtrip, tmp_path, spec, charset, name
):
    """Character sets as scanners write them, which highdicom refuses as they are, give valid
    outputs carrying the patient's name as the source has it."""
    _need("dciodvfy")
    _need("dsrdump")
    source, mask = phantom(seed=8)
    source.SpecificCharacterSet = charset
    source.PatientName = name
    source = roundtrip(source)
    paths = _write(build_outputs(make_prediction(source, mask), source, 37, spec=spec), tmp_path)
    assert set(paths) == {"seg", "sr", "heatmap"}
    for role, path in paths.items():
        assert dciodvfy_errors(path) == [], role
        written = pydicom.dcmread(path)
        assert str(written.PatientName) == name, role
        if charset == ["", "ISO 2022 IR 87"]:  # the source's spelling: Orthanc 1.10 decodes by
            # the first non-empty value, and read 'ISO 2022 IR 6\ISO 2022 IR 87' as ASCII
            assert list(written.SpecificCharacterSet) == charset, role
    # DCMTK's iconv build cannot convert ISO 2022 code extensions: it warns about the set, as
    # it does on the source itself, and parses the tree
    unsupported_set = re.compile(r"^W: .*(unsupported|not support).*SpecificCharacterSet|"
                                 r"^W: .*does not support this Specific Character Set")
    assert [e for e in dsrdump_errors(paths["sr"]) if not unsupported_set.search(e)] == []


@pytest.mark.parametrize(
    ("sop_class", "frames", "number_of_frames"),
    [
        ("1.2.840.10008.5.1.4.1.1.3.1", 1, 1),  # US Multi-frame with one frame
        ("1.2.840.10008.5.1.4.1.1.3", 1, 1),  # its retired class
        ("1.2.840.10008.5.1.4.1.1.7.4", 1, 1),  # Multi-frame True Color SC
        ("1.2.840.10008.5.1.4.1.1.3.1", 2, 0),  # NumberOfFrames 0 over two frames of data
    ],
    ids=["us-multi-frame", "retired-us-multi-frame", "multi-frame-true-colour-sc", "zero-frames"],
)
def test_outputs_one_frame_of_a_multi_frame_class_sr_outline_no_seg_dciodvfy_zero_errors(
    phantom, make_prediction, roundtrip, tmp_path, spec, sop_class, frames, number_of_frames
):
    """A mask in a calibrated region on one frame of a multi-frame class: no SEG (highdicom
    would need an enhanced multi-frame source; it raised AttributeError and failed the job),
    the SR's polygon is the outline and says why."""
    _need("dciodvfy")
    source, mask = phantom(seed=8, frames=frames, sop_class_uid=sop_class, rgb=sop_class.endswith("7.4"))
    source.NumberOfFrames = number_of_frames
    source = roundtrip(source)
    mask = mask[0] if mask.ndim == 3 else mask
    outputs = build_outputs(make_prediction(source, mask), source, 38, spec=spec)
    assert set(outputs) == {"sr", "heatmap"}
    texts = [str(item.get("TextValue", "")) for item in content_items(outputs["sr"])]
    assert any("multi-frame storage class" in text for text in texts)
    assert any(item.ValueType == "SCOORD" for item in content_items(outputs["sr"]))
    for role, path in _write(outputs, tmp_path).items():
        assert dciodvfy_errors(path) == [], role


def test_outputs_two_frames_single_frame_class_no_frame_number(phantom, make_prediction, spec):
    source, mask = phantom(seed=8, **PHANTOMS["two-frames-single-frame-class"])
    assert source.SOPClassUID == US_IMAGE_STORAGE and int(source.NumberOfFrames) == 2
    outputs = build_outputs(make_prediction(source, mask, frame_index=1), source, 36, spec=spec)
    for role, dataset in outputs.items():
        assert "ReferencedFrameNumber" not in str(dataset), role


@pytest.mark.shared_data
@pytest.mark.skipif(not REAL_FILES, reason=f"real US files not found under {SHARED_US}")
@pytest.mark.parametrize("path", REAL_FILES, ids=lambda p: p.name)
def test_outputs_real_source_dciodvfy_zero_errors(make_prediction, tmp_path, path, spec):
    _need("dciodvfy")
    _need("dsrdump")
    source = pydicom.dcmread(path)
    frames = int(source.get("NumberOfFrames", 1) or 1)
    prediction = make_prediction(source, _elliptical_mask(source), frame_index=frames // 2)
    outputs = build_outputs(prediction, source, 35, spec=spec)
    calibrated = segment_pixel_spacing(source, prediction.mask) is not None
    assert ("seg" in outputs) == (frames == 1 and calibrated)
    paths = _write(outputs, tmp_path)
    for role, output_path in paths.items():
        assert _errors_not_from_source(dciodvfy_errors(output_path), source) == [], role
    assert dsrdump_errors(paths["sr"]) == []


def test_dciodvfy_errors_defective_file_errors_reported(phantom, tmp_path):
    _need("dciodvfy")
    source, _ = phantom(seed=8)
    del source.PatientID  # Type 2 attribute missing: an IOD error
    path = tmp_path / "defective.dcm"
    source.save_as(path, enforce_file_format=True)
    errors = dciodvfy_errors(path)
    assert any("PatientID" in error for error in errors)
