from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.uid import JPEGBaseline8Bit, RLELossless
from torch import nn

from inference.loading import load_network
from inference.prediction import Call, Prediction
from inference.registry import HeatmapOutput, ModelSpec, RegistryError
from inference.runner import NOTE_NO_TISSUE_REGION, run_model
from kernel.errors import InvalidInput
from phantom.us_dicom import write_us_study

ROWS, COLS = 96, 128


class _ConstantNet(nn.Module):
    """Segmentation logit ``seg`` everywhere, class logit ``cls``; ``features`` for Grad-CAM."""

    def __init__(self, seg: float, cls: float) -> None:
        super().__init__()
        self.features = nn.Conv2d(1, 1, kernel_size=1)
        self.seg, self.cls = seg, cls

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        logit = features.mean(dim=(1, 2, 3))[:, None] * 0.0 + self.cls
        return features * 0.0 + self.seg, logit


@pytest.fixture(scope="module")
def network(tiny_spec: ModelSpec) -> nn.Module:
    return load_network(tiny_spec, "cpu")


@pytest.fixture(scope="module")
def toy_spec(tiny_spec: ModelSpec) -> ModelSpec:
    """``tiny_spec`` with Grad-CAM on the ``features`` layer of :class:`_ConstantNet`."""
    heatmap = HeatmapOutput(method="gradcam", layer="features")
    return tiny_spec.model_copy(
        update={"outputs": tiny_spec.outputs.model_copy(update={"heatmap": heatmap})}
    )


def _study(folder: Path, **kwargs: object) -> list[Path]:
    return write_us_study(folder, seed=5, rows=ROWS, cols=COLS, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"rgb": True},
        {"rgb": True, "transfer_syntax": JPEGBaseline8Bit},
        {"frames": 5, "transfer_syntax": RLELossless},
        {"mm_per_pixel": None},
    ],
    ids=["grey", "rgb", "jpeg-ybr", "cine-rle", "no-calibration"],
)
def test_run_model_phantom_study_prediction_on_source_grid(
    tmp_path: Path, tiny_spec: ModelSpec, network: nn.Module, kwargs: dict
) -> None:
    paths = _study(tmp_path, **kwargs)

    prediction = run_model(tiny_spec, network, paths, "cpu")

    assert prediction.heatmap.shape == (ROWS, COLS)
    assert prediction.heatmap.dtype == np.float32
    assert 0.0 <= prediction.heatmap.min() and prediction.heatmap.max() <= 1.0
    assert prediction.mask is None or prediction.mask.shape == (ROWS, COLS)
    assert 0.0 <= prediction.probability <= 1.0
    assert prediction.call in (Call.PRESENT, Call.ABSENT)
    assert prediction.source_path == paths[0]
    assert prediction.source_sop_instance_uid == pydicom.dcmread(paths[0]).SOPInstanceUID
    assert (prediction.model_key, prediction.model_version) == ("tiny-ynet", "0.1.0")
    assert prediction.frame_index == (2 if kwargs.get("frames") else 0)


def test_run_model_no_calibration_notes_say_so(tmp_path: Path, toy_spec: ModelSpec) -> None:
    paths = _study(tmp_path, mm_per_pixel=None)

    prediction = run_model(toy_spec, _ConstantNet(seg=10.0, cls=0.0), paths, "cpu")

    assert prediction.measurements is None
    assert NOTE_NO_TISSUE_REGION in prediction.notes
    assert any("no calibration" in note for note in prediction.notes)


def test_run_model_calibrated_full_mask_measured_in_mm(tmp_path: Path, toy_spec: ModelSpec) -> None:
    paths = _study(tmp_path, mm_per_pixel=0.1)

    prediction = run_model(toy_spec, _ConstantNet(seg=10.0, cls=0.0), paths, "cpu")

    assert prediction.mask is not None and prediction.mask.all()
    assert prediction.measurements is not None
    assert prediction.measurements.long_axis_mm == pytest.approx(
        np.hypot(ROWS, COLS) * 0.1, rel=0.02
    )


def test_run_model_mask_and_heatmap_zero_outside_tissue_box(
    tmp_path: Path, toy_spec: ModelSpec, tiny_spec: ModelSpec, network: nn.Module
) -> None:
    paths = _study(tmp_path)
    ds = pydicom.dcmread(paths[0])
    region = ds.SequenceOfUltrasoundRegions[0]
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 20, 10
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 99, 79
    ds.save_as(paths[0])

    full = run_model(toy_spec, _ConstantNet(seg=10.0, cls=0.0), paths, "cpu")
    real = run_model(tiny_spec, network, paths, "cpu")

    expected = np.zeros((ROWS, COLS), bool)
    expected[10:80, 20:100] = True
    np.testing.assert_array_equal(full.mask, expected)
    assert not real.heatmap[~expected].any()
    assert real.heatmap[expected].max() > 0.0


def test_run_model_empty_segmentation_mask_none_with_note(
    tmp_path: Path, toy_spec: ModelSpec
) -> None:
    prediction = run_model(toy_spec, _ConstantNet(seg=-10.0, cls=0.0), _study(tmp_path), "cpu")

    assert prediction.mask is None
    assert prediction.measurements is None
    assert any("segmentation is empty" in note for note in prediction.notes)


@pytest.mark.parametrize(("cls", "expected"), [(3.0, Call.PRESENT), (-3.0, Call.ABSENT)])
def test_run_model_call_follows_threshold(
    tmp_path: Path, toy_spec: ModelSpec, cls: float, expected: Call
) -> None:
    prediction = run_model(toy_spec, _ConstantNet(seg=0.0, cls=cls), _study(tmp_path), "cpu")

    assert prediction.probability == pytest.approx(1 / (1 + np.exp(-cls)), abs=1e-6)
    assert prediction.call is expected
    assert prediction.threshold == toy_spec.threshold


def test_run_model_probability_equal_threshold_is_present(
    tmp_path: Path, toy_spec: ModelSpec
) -> None:
    prediction = run_model(toy_spec, _ConstantNet(seg=0.0, cls=0.0), _study(tmp_path), "cpu")

    assert prediction.probability == 0.5 and prediction.call is Call.PRESENT


def test_run_model_deterministic(tmp_path: Path, tiny_spec: ModelSpec, network: nn.Module) -> None:
    paths = _study(tmp_path)

    first = run_model(tiny_spec, network, paths, "cpu")
    second = run_model(tiny_spec, network, paths, "cpu")

    assert first.probability == second.probability
    np.testing.assert_array_equal(first.heatmap, second.heatmap)


def test_run_model_no_image_in_study_raises_invalid_input(
    tmp_path: Path, toy_spec: ModelSpec
) -> None:
    with pytest.raises(InvalidInput, match="no B-mode image"):
        run_model(toy_spec, _ConstantNet(seg=0.0, cls=0.0), [], "cpu")


def test_run_model_multi_channel_spec_raises_registry_error(
    tmp_path: Path, make_spec_fields: Callable[..., dict]
) -> None:
    fields = make_spec_fields(in_channels=3)
    fields["inputs"][0]["contract"]["channels"] = 3
    spec = ModelSpec.model_validate(fields)

    with pytest.raises(RegistryError, match="image runner"):
        run_model(spec, _ConstantNet(seg=0.0, cls=0.0), _study(tmp_path), "cpu")


def test_prediction_save_load_round_trip(tmp_path: Path, toy_spec: ModelSpec) -> None:
    prediction = run_model(toy_spec, _ConstantNet(seg=10.0, cls=1.0), _study(tmp_path / "s"), "cpu")

    prediction.save(tmp_path / "out")
    loaded = Prediction.load(tmp_path / "out")

    assert loaded.measurements == prediction.measurements
    assert loaded.notes == prediction.notes and loaded.call is prediction.call
    assert (loaded.probability, loaded.source_path) == (
        prediction.probability,
        prediction.source_path,
    )
    np.testing.assert_array_equal(loaded.mask, prediction.mask)
    np.testing.assert_array_equal(loaded.heatmap, prediction.heatmap)


@pytest.mark.shared_data
def test_run_model_real_palette_file_on_its_grid(
    shared_data: Path, tiny_spec: ModelSpec, network: nn.Module
) -> None:
    path = shared_data / "us-dicom" / "pydicom_wheel" / "examples_palette.dcm"

    prediction = run_model(tiny_spec, network, [path], "cpu")

    assert prediction.heatmap.shape == (350, 800)
    assert 0.0 <= prediction.probability <= 1.0
