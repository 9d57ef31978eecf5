from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import JPEGBaseline8Bit, generate_uid

from inference.encode.outputs import build_outputs
from inference.registry import ModelInput, SelectionRule, TensorContract
from inference.selection import (
    DOPPLER_MIN_COLOUR_FRACTION,
    NOTE_BMODE_FROM_DOPPLER,
    CeusRule,
    MissingInput,
    choose,
    colour_fraction,
    rank_bmode,
    read_headers,
    reference_header,
    sample_frame_indices,
    select_bmode,
    select_input,
    select_model_input,
)
from kernel.errors import InvalidInput
from kernel.settings import Settings
from phantom.study import write_phantom_study
from phantom.us_dicom import SECONDARY_CAPTURE_STORAGE, make_us_dataset
from tests.support.predictions import model_spec, phantom_source, prediction_for

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


# --- rules per model input, on phantom studies (B-mode, colour Doppler, cine, CEUS) ---


def _phantom(folder: Path, **kwargs: object) -> dict[str, Path]:
    options = {"rows": 96, "cols": 128, "cine_frames": 20, "ceus_frames": 12, **kwargs}
    paths, _ = write_phantom_study(folder, 3, True, **options)  # type: ignore[arg-type]
    return {path.stem: path for path in paths}


def _input(rule: str, frames: int = 1, channels: int = 1) -> ModelInput:
    contract = TensorContract(channels=channels, frames=frames, size=64, range=(0.0, 1.0))
    return ModelInput(name=f"in-{rule}", rule=SelectionRule(rule), contract=contract)


@pytest.fixture(scope="module")
def phantom_study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _phantom(tmp_path_factory.mktemp("phantom"))


@pytest.mark.parametrize(
    ("rule", "expected"),
    [("bmode", "bmode"), ("doppler", "doppler"), ("cine", "cine"), ("ceus", "ceus")],
)
def test_select_input_phantom_study_each_rule_finds_its_series(
    phantom_study: dict[str, Path], rule: str, expected: str
) -> None:
    paths = list(phantom_study.values())

    forward = select_input(paths, SelectionRule(rule))
    backward = select_input(paths[::-1], SelectionRule(rule))

    assert forward.path == backward.path == phantom_study[expected]
    assert forward.frame_index == backward.frame_index


def test_select_bmode_phantom_grey_cine_before_doppler_never_ceus(
    phantom_study: dict[str, Path],
) -> None:
    paths = [phantom_study["doppler"], phantom_study["ceus"], phantom_study["cine"]]

    selection = select_bmode(paths)

    assert selection.path == phantom_study["cine"]
    assert selection.frame_index == 10


def test_select_model_input_cine_sixteen_frames_sampled_evenly(
    phantom_study: dict[str, Path],
) -> None:
    chosen = select_model_input(
        read_headers(list(phantom_study.values())), _input("cine", frames=16)
    )

    assert chosen.path == phantom_study["cine"]
    assert chosen.frame_indices[0] == 0 and chosen.frame_indices[-1] == 19
    assert len(chosen.frames) == 16 and chosen.frames[0].shape == (96, 128)
    assert chosen.key_frame == chosen.frame_indices[8]
    assert list(chosen.frame_indices) == sorted(chosen.frame_indices)


def test_select_model_input_ceus_five_key_frames_equal_intervals(
    phantom_study: dict[str, Path],
) -> None:
    chosen = select_model_input(
        read_headers(list(phantom_study.values())), _input("ceus", frames=5)
    )

    assert chosen.path == phantom_study["ceus"]
    assert chosen.frame_indices == (0, 3, 6, 8, 11)
    assert chosen.key_frame == 6


def test_select_model_input_doppler_rgb_frame(phantom_study: dict[str, Path]) -> None:
    chosen = select_model_input(
        read_headers(list(phantom_study.values())), _input("doppler", channels=3)
    )

    assert chosen.path == phantom_study["doppler"]
    assert chosen.frames[0].shape == (96, 128, 3)
    assert chosen.frame_indices == (0,)


def test_select_input_missing_doppler_raises_missing_input_with_reasons(tmp_path: Path) -> None:
    study = _phantom(tmp_path, with_doppler=False)

    with pytest.raises(
        MissingInput, match=r"no colour Doppler image in the study \(3 instance"
    ) as info:
        select_model_input(read_headers(list(study.values())), _input("doppler", channels=3))

    assert info.value.input_name == "in-doppler" and info.value.rule is SelectionRule.DOPPLER
    assert "grey-scale, no colour flow region" in str(info.value)


@pytest.mark.parametrize(("rule", "present"), [("cine", "with_cine"), ("ceus", "with_ceus")])
def test_select_input_missing_multiframe_input_raises_missing_input(
    tmp_path: Path, rule: str, present: str
) -> None:
    study = _phantom(tmp_path, **{present: False})

    with pytest.raises(MissingInput, match="no .*in the study"):
        select_input(list(study.values()), SelectionRule(rule))


def test_select_input_doppler_without_colour_region_found_by_colour_pixels(tmp_path: Path) -> None:
    study = _phantom(tmp_path)
    ds = pydicom.dcmread(study["doppler"])
    del ds.SequenceOfUltrasoundRegions[1]  # the RegionDataType 2 (colour flow) item
    ds.save_as(study["doppler"], enforce_file_format=True)

    doppler = select_input(list(study.values()), SelectionRule.DOPPLER)
    bmode = select_input([study["doppler"], study["cine"]], SelectionRule.BMODE)

    assert doppler.path == study["doppler"]
    assert colour_fraction(doppler.frame, ds) >= DOPPLER_MIN_COLOUR_FRACTION
    assert bmode.path == study["cine"]


def test_select_input_grey_rgb_image_is_not_doppler(tmp_path: Path) -> None:
    grey_rgb = _write(tmp_path, "rgb", seed=1, rgb=True)

    with pytest.raises(MissingInput, match="1 no colour flow content"):
        select_input([grey_rgb], SelectionRule.DOPPLER)
    assert select_input([grey_rgb], SelectionRule.BMODE).path == grey_rgb


def test_select_input_node_heatmap_forwarded_back_is_never_an_input(tmp_path: Path) -> None:
    """A PACS forwards the study back with our Grad-CAM heatmap (a colour US Secondary Capture):
    it is not taken as the study's colour Doppler image, nor as anything else."""
    study = _phantom(tmp_path, with_doppler=False)
    source, mask = phantom_source(seed=5)
    outputs = build_outputs(prediction_for(source, mask), source, 1, spec=model_spec())
    heatmap = tmp_path / "heatmap.dcm"
    outputs["heatmap"].save_as(heatmap, enforce_file_format=True)
    files = [*study.values(), heatmap]

    with pytest.raises(MissingInput, match="1 a result of this node, not an acquisition"):
        select_input(files, SelectionRule.DOPPLER)
    assert select_input([heatmap, study["bmode"]], SelectionRule.BMODE).path == study["bmode"]


def test_ceus_rule_private_tag_configurable(tmp_path: Path) -> None:
    study = _phantom(tmp_path)
    ds = pydicom.dcmread(study["ceus"])
    ds.SeriesDescription = "CONTRAST-FREE SWEEP"
    ds.add_new(0x00091010, "LO", "LNMNODE")  # private creator
    ds.add_new(0x00091011, "LO", "SonoVue contrast")
    ds.save_as(study["ceus"], enforce_file_format=True)
    paths = list(study.values())

    with pytest.raises(MissingInput):
        select_input(paths, SelectionRule.CEUS, ceus=CeusRule(pattern=r"^CEUS$"))
    chosen = select_input(
        paths, SelectionRule.CEUS, ceus=CeusRule(tag="0009,1011", pattern="SonoVue")
    )

    assert chosen.path == study["ceus"]


def test_ceus_rule_from_settings_uses_the_settings() -> None:
    rule = CeusRule.from_settings(Settings(ceus_tag="0009,1011", ceus_pattern="(?i)sonovue"))

    assert (rule.tag, rule.pattern) == ("0009,1011", "(?i)sonovue")
    assert CeusRule() == CeusRule.from_settings(Settings())


def test_sample_frame_indices_even_spread_and_middle() -> None:
    assert sample_frame_indices(24, 1) == (12,)
    assert sample_frame_indices(20, 5) == (0, 5, 10, 14, 19)
    assert sample_frame_indices(3, 5) == (0, 0, 1, 2, 2)
    assert len(sample_frame_indices(100, 16)) == 16


def test_choose_undecodable_candidate_counted_and_next_taken(tmp_path: Path) -> None:
    study = _phantom(tmp_path, with_doppler=False, with_ceus=False)
    ds = pydicom.dcmread(study["cine"])
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(study["cine"], enforce_file_format=True)

    with pytest.raises(MissingInput, match="1 pixel data does not decode"):
        choose(read_headers(list(study.values())), SelectionRule.CINE, 16)


def test_reference_header_prefers_images_then_series_order(tmp_path: Path) -> None:
    study = _phantom(tmp_path)
    sr = _sr(tmp_path)

    found = reference_header([sr, study["ceus"], study["bmode"]])
    only_sr = reference_header([sr])

    assert found is not None and found[0] == study["bmode"]
    assert only_sr is not None and only_sr[0] == sr
    assert reference_header([]) is None


@pytest.mark.shared_data
def test_select_input_real_power_doppler_file_doppler_and_bmode_only_as_fallback(
    shared_data: Path,
) -> None:
    us1 = shared_data / "us-dicom" / "pydicom_data" / "US1_UNCR.dcm"
    grey = shared_data / "us-dicom" / "pydicom_data" / "OBXXXX1A.dcm"

    assert select_input([us1], SelectionRule.DOPPLER).path == us1
    assert select_bmode([us1, grey]).path == grey
    fallback = choose(read_headers([us1]), SelectionRule.BMODE)
    assert fallback.path == us1 and fallback.note == NOTE_BMODE_FROM_DOPPLER


def test_select_bmode_only_doppler_and_ceus_takes_doppler_with_note(
    phantom_study: dict[str, Path],
) -> None:
    headers = read_headers([phantom_study["ceus"], phantom_study["doppler"]])

    chosen = choose(headers, SelectionRule.BMODE)

    assert chosen.path == phantom_study["doppler"]
    assert chosen.note == NOTE_BMODE_FROM_DOPPLER


def test_select_bmode_only_ceus_raises_missing_input(phantom_study: dict[str, Path]) -> None:
    with pytest.raises(MissingInput, match="1 a CEUS instance"):
        select_bmode([phantom_study["ceus"]])
