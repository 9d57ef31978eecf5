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
from inference.registry import Calibration, Family, HeatmapOutput, ModelSpec, RegistryError
from inference.runner import (
    NOTE_NO_TISSUE_REGION,
    frame_planes,
    input_tensor,
    run_model,
    split_outputs,
)
from inference.selection import (
    MissingInput,
    read_headers,
    sample_frame_indices,
    select_model_input,
)
from kernel.errors import InvalidInput
from phantom.study import write_phantom_study
from phantom.us_dicom import write_us_study
from tests.support.family_models import family_spec, package_family_model

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


class _TwoRegionNet(_ConstantNet):
    """Lesion in two separate boxes of the model grid: the left half's top quarter (larger)
    and a small square in the bottom right corner."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seg, logit = super().forward(x)
        size = seg.shape[-1]
        seg = seg.clone()
        seg[..., : size // 4, : size // 2] = 10.0
        seg[..., -size // 8 :, -size // 8 :] = 10.0
        return seg, logit


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


def test_run_model_outlines_the_largest_region_and_notes_the_others(
    tmp_path: Path, toy_spec: ModelSpec
) -> None:
    paths = _study(tmp_path, mm_per_pixel=0.1)

    prediction = run_model(toy_spec, _TwoRegionNet(seg=-10.0, cls=0.0), paths, "cpu")

    assert prediction.mask is not None
    rows, cols = np.nonzero(prediction.mask)
    assert rows.max() < ROWS // 2 and cols.max() < COLS * 3 // 4  # the top-left region only
    others = [note for note in prediction.notes if "more separate region" in note]
    assert len(others) == 1 and others[0].startswith("the segmentation has 1 more separate")


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


def test_run_model_temperature_calibrated_probability_and_call_on_it(
    tmp_path: Path, toy_spec: ModelSpec
) -> None:
    """Logit 2 at T = 4 reports sigmoid(0.5) = 0.622: present at threshold 0.6, though the
    network's own 0.881 would be present at 0.85 and the calibrated one is not."""
    calibration = Calibration(method="temperature", temperature=4.0, fitted_on="test")
    study = _study(tmp_path)
    for threshold, expected in ((0.6, Call.PRESENT), (0.85, Call.ABSENT)):
        spec = toy_spec.model_copy(update={"calibration": calibration, "threshold": threshold})
        prediction = run_model(spec, _ConstantNet(seg=0.0, cls=2.0), study, "cpu")
        assert prediction.probability == pytest.approx(1 / (1 + np.exp(-0.5)), abs=1e-9)
        assert prediction.call is expected and prediction.threshold == threshold


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


def test_run_model_two_channel_input_raises_registry_error(
    tmp_path: Path, make_spec_fields: Callable[..., dict]
) -> None:
    fields = make_spec_fields(in_channels=2)
    fields["inputs"][0]["contract"]["channels"] = 2
    spec = ModelSpec.model_validate(fields)

    with pytest.raises(RegistryError, match=r"1 \(grey\) or 3 \(RGB\)"):
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


# --- every model family: stand-in networks following the forward conventions, then real ones ---


class _StandIn(nn.Module):
    """A network of any family: records its inputs' shapes; class logit from the first input.

    ``features`` (Conv2d, or Conv3d for a clip) is the Grad-CAM layer; the logit also depends
    on the other inputs so that they are really used.
    """

    def __init__(self, family: str, channels: int) -> None:
        super().__init__()
        conv = nn.Conv3d if family == "video" else nn.Conv2d
        torch.manual_seed(0)
        self.features = conv(channels, 2, kernel_size=1)
        self.family = family
        self.seen: list[tuple[tuple[int, ...], ...]] = []

    def forward(self, x: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(tuple(t.shape) for t in (x, *others)))
        features = torch.relu(self.features(x))
        logit = features.mean(dim=tuple(range(1, features.ndim)))[:, None]
        for other in others:
            logit = logit + 0.01 * other.mean(dim=tuple(range(1, other.ndim)))[:, None]
        return logit


FAMILY_SHAPES = {
    "image": ((1, 1, 64, 64),),
    "dual": ((1, 1, 64, 64), (1, 3, 64, 64)),
    "video": ((1, 1, 16, 64, 64),),
    "ceus": ((1, 1, 64, 64), (1, 5, 64, 64)),
}


@pytest.fixture(scope="module")
def family_study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("family-study")
    paths, _ = write_phantom_study(
        folder, 4, True, rows=ROWS, cols=COLS, cine_frames=20, ceus_frames=12
    )
    return {path.stem: path for path in paths}


@pytest.mark.parametrize("family", sorted(FAMILY_SHAPES))
def test_run_model_stand_in_family_tensors_follow_conventions(
    family_study: dict[str, Path], family: str
) -> None:
    spec = family_spec(family, "features")
    network = _StandIn(family, 1)

    prediction = run_model(spec, network, list(family_study.values()), "cpu")

    assert network.seen[0] == FAMILY_SHAPES[family]
    assert prediction.heatmap.shape == (ROWS, COLS) and prediction.heatmap.dtype == np.float32
    assert 0.0 <= prediction.heatmap.min() and prediction.heatmap.max() <= 1.0
    assert prediction.mask is None and prediction.measurements is None
    assert f"model family {family!r} does not segment" in " ".join(prediction.notes)
    source = "cine" if family == "video" else "bmode"
    assert prediction.source_path == family_study[source]
    assert prediction.frame_index == (sample_frame_indices(20, 16)[8] if family == "video" else 0)


class _CeusFeaturesNet(nn.Module):
    """``forward(bmode, ceus)``: ``features`` (Grad-CAM layer) reads the CEUS key frames only."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Conv2d(5, 2, kernel_size=1)
        self.seen: list[tuple[tuple[int, ...], ...]] = []

    def forward(self, bmode: torch.Tensor, ceus: torch.Tensor) -> torch.Tensor:
        self.seen.append((tuple(bmode.shape), tuple(ceus.shape)))
        logit = torch.relu(self.features(ceus)).mean(dim=(1, 2, 3))[:, None]
        return logit + 0.01 * bmode.mean(dim=(1, 2, 3))[:, None]


def test_run_model_explains_the_input_the_spec_names(family_study: dict[str, Path]) -> None:
    fields = family_spec("ceus", "features").model_dump(mode="json")
    fields["outputs"]["heatmap"]["input"] = "ceus"
    spec = ModelSpec.model_validate(fields)
    network = _CeusFeaturesNet()

    prediction = run_model(spec, network, list(family_study.values()), "cpu")

    ceus = pydicom.dcmread(family_study["ceus"])
    assert prediction.source_path == family_study["ceus"]
    assert prediction.source_sop_instance_uid == ceus.SOPInstanceUID
    assert 0 < prediction.frame_index < int(ceus.NumberOfFrames)
    assert prediction.heatmap.shape == (int(ceus.Rows), int(ceus.Columns))
    assert set(network.seen) == {FAMILY_SHAPES["ceus"]}  # forward and Grad-CAM: bmode, ceus


def test_run_model_default_explains_first_input(family_study: dict[str, Path]) -> None:
    spec = family_spec("ceus", "features")

    prediction = run_model(spec, _StandIn("ceus", 1), list(family_study.values()), "cpu")

    assert spec.outputs.heatmap.input == "bmode"
    assert prediction.source_path == family_study["bmode"]


@pytest.mark.parametrize(("family", "name"), [("video", "clip"), ("ceus", "ceus")])
def test_input_tensor_frames_in_order_as_frame_planes_lays_them(
    family_study: dict[str, Path], family: str, name: str
) -> None:
    spec = family_spec(family, "features")
    item = next(i for i in spec.inputs if i.name == name)
    selection = select_model_input(read_headers(family_study.values()), item)

    tensor, box = input_tensor(selection, item, spec.family)

    frames = [frame_planes(frame, box, item) for frame in selection.frames]
    expected = torch.stack(frames, dim=2) if family == "video" else torch.cat(frames, dim=1)
    assert len({float(f.mean()) for f in frames}) > 1  # the frames differ: order matters
    torch.testing.assert_close(tensor, expected, rtol=0.0, atol=1e-6)


def test_run_model_stand_in_dual_doppler_tensor_carries_colour(
    family_study: dict[str, Path],
) -> None:
    spec = family_spec("dual", "features")
    captured: list[torch.Tensor] = []

    class _Capture(_StandIn):
        def forward(self, x: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
            captured.extend(others)
            return super().forward(x, *others)

    run_model(spec, _Capture("dual", 1), list(family_study.values()), "cpu")

    doppler = captured[0][0]
    assert not torch.equal(doppler[0], doppler[2])  # red and blue planes differ: colour kept


def test_run_model_video_heatmap_from_key_frame_of_clip(family_study: dict[str, Path]) -> None:
    spec = family_spec("video", "features")

    prediction = run_model(spec, _StandIn("video", 1), [family_study["cine"]], "cpu")

    assert prediction.source_path == family_study["cine"]
    assert prediction.heatmap.shape == (ROWS, COLS)
    assert any("16 frames sampled from a cine of 20 frames" in n for n in prediction.notes)


@pytest.mark.parametrize(
    ("family", "missing", "message"),
    [
        ("dual", "doppler", "no colour Doppler image"),
        ("video", "cine", "no grey-scale cine"),
        ("ceus", "ceus", "no contrast-enhanced"),
    ],
)
def test_run_model_missing_input_raises_missing_input_naming_it(
    family_study: dict[str, Path], family: str, missing: str, message: str
) -> None:
    spec = family_spec(family, "features")
    paths = [path for stem, path in family_study.items() if stem != missing]

    with pytest.raises(MissingInput, match=message) as info:
        run_model(spec, _StandIn(family, 1), paths, "cpu")

    assert info.value.input_name == spec.inputs[-1].name


def test_run_model_segcls_on_phantom_study_takes_bmode_not_doppler(
    family_study: dict[str, Path], toy_spec: ModelSpec
) -> None:
    paths = [family_study[s] for s in ("doppler", "ceus", "cine", "bmode")]

    prediction = run_model(toy_spec, _ConstantNet(seg=10.0, cls=0.0), paths, "cpu")

    assert prediction.source_path == family_study["bmode"]
    assert prediction.mask is not None and prediction.measurements is not None


def test_frame_planes_grey_frame_three_channels_repeated() -> None:
    spec = family_spec("dual", "features")
    grey = np.tile(np.arange(64, dtype=np.uint8), (48, 1))

    planes = frame_planes(grey, (0, 0, 64, 48), spec.inputs[1])

    assert planes.shape == (1, 3, 64, 64)
    assert torch.equal(planes[0, 0], planes[0, 1]) and torch.equal(planes[0, 1], planes[0, 2])


def test_split_outputs_segcls_needs_pair_others_take_logits() -> None:
    logits = torch.zeros(1, 1)

    assert split_outputs(Family.IMAGE, logits)[0] is None
    assert split_outputs(Family.SEGCLS, (torch.zeros(1, 1, 4, 4), logits))[1] is logits
    with pytest.raises(RegistryError, match="segcls"):
        split_outputs(Family.SEGCLS, logits)


@pytest.fixture(scope="module")
def family_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelSpec]:
    root = tmp_path_factory.mktemp("family-models")
    return {
        family: package_family_model(root / family, family)
        for family in ("segcls", "image", "dual", "video", "ceus")
    }


@pytest.mark.parametrize("family", ["segcls", "image", "dual", "video", "ceus"])
def test_run_model_real_family_network_prediction_on_source_grid(
    family_study: dict[str, Path], family_models: dict[str, ModelSpec], family: str
) -> None:
    spec = family_models[family]
    network = load_network(spec, "cpu")
    paths = list(family_study.values())

    first = run_model(spec, network, paths, "cpu")
    second = run_model(spec, network, paths[::-1], "cpu")

    assert first.heatmap.shape == (ROWS, COLS)
    assert 0.0 <= first.probability <= 1.0 and first.probability == second.probability
    np.testing.assert_array_equal(first.heatmap, second.heatmap)
    assert (first.mask is not None) == (family == "segcls")
    assert (first.model_key, first.model_version) == (spec.key, spec.version)
