from __future__ import annotations

import numpy as np
import pytest

from phantom.ceus import CEUS_SERIES_DESCRIPTION, ceus_frames, curves, make_ceus_dataset
from phantom.cine import MOTION_PX, cine_frames, make_cine_dataset, probe_offsets
from phantom.header import InstanceIdentity
from phantom.node import make_node, necrosis_mask, node_mask

ROWS, COLS = 96, 128
IDENTITY = InstanceIdentity("SYN1", "A1", "1.2.3", "1.2.3.4", "1.2.3.4.6", 3, "CINE")


def test_probe_offsets_sway_within_motion_range() -> None:
    offsets = probe_offsets(24)

    assert offsets[0] == (0, 0)
    assert max(abs(x) for x, _ in offsets) == MOTION_PX[0]
    assert max(abs(y) for _, y in offsets) <= MOTION_PX[1]


def test_cine_frames_node_moves_with_probe() -> None:
    node = make_node(ROWS, COLS, 1, malignant=False)

    stack, centres = cine_frames(node, ROWS, COLS, 1, 12)

    assert stack.shape == (12, ROWS, COLS) and stack.dtype == np.uint8
    moved = [i for i, (x, y) in enumerate(centres) if (x, y) != node.center_xy]
    assert moved and not np.array_equal(stack[0], stack[moved[0]])
    for frame, (x, y) in zip(stack, centres, strict=True):  # the node is dark where it went
        dx, dy = node.center_xy[0] - x, node.center_xy[1] - y
        shifted = node_mask(node, ROWS, COLS, (round(dx), round(dy)))
        assert frame[shifted].mean() < frame[~shifted].mean()


def test_make_cine_dataset_multiframe_with_frame_time() -> None:
    node = make_node(ROWS, COLS, 2, malignant=True)

    ds, centres = make_cine_dataset(node, ROWS, COLS, 2, IDENTITY, frames=10)

    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.3.1"
    assert int(ds.NumberOfFrames) == 10 and float(ds.FrameTime) == 40.0
    assert len(centres) == 10 and ds.pixel_array.shape == (10, ROWS, COLS)


@pytest.mark.parametrize("malignant", [False, True])
def test_ceus_frames_node_washes_in_then_out(malignant: bool) -> None:
    node = make_node(ROWS, COLS, 3, malignant=malignant)

    stack, tissue, node_curve = ceus_frames(node, ROWS, COLS, 3, 30, 1.0)

    peak = int(np.argmax(node_curve))
    assert 0 < peak < 29 and node_curve[0] == 0.0
    assert node_curve[-1] < node_curve[peak]
    assert node_curve[peak] > tissue.max()
    inside = node_mask(node, ROWS, COLS) & ~necrosis_mask(node, ROWS, COLS)
    means = stack[:, inside].mean(axis=1)
    assert means[peak] > 3 * means[0]


def test_ceus_curves_malignant_earlier_and_faster_wash_out() -> None:
    _, benign = curves(False)
    _, malignant = curves(True)
    times = np.arange(0, 60, 0.5)

    assert times[np.argmax(malignant.at(times))] < times[np.argmax(benign.at(times))]
    late = times > 35
    assert (malignant.at(times)[late] / malignant.peak).mean() < (
        benign.at(times)[late] / benign.peak
    ).mean()


def test_ceus_necrosis_perfusion_defect_stays_dark() -> None:
    seed = next(s for s in range(50) if make_node(ROWS, COLS, s, True).necrosis is not None)
    node = make_node(ROWS, COLS, seed, malignant=True)
    stack, _, node_curve = ceus_frames(node, ROWS, COLS, seed, 20, 1.0)
    peak = int(np.argmax(node_curve))
    defect = necrosis_mask(node, ROWS, COLS)

    assert (
        stack[peak][defect].mean() < 0.1 * stack[peak][node_mask(node, ROWS, COLS) & ~defect].mean()
    )


def test_make_ceus_dataset_described_ceus() -> None:
    node = make_node(ROWS, COLS, 4, malignant=False)

    ds, curve = make_ceus_dataset(node, ROWS, COLS, 4, IDENTITY, frames=8)

    assert ds.SeriesDescription == CEUS_SERIES_DESCRIPTION == "CEUS"
    assert int(ds.NumberOfFrames) == 8 and len(curve) == 8
