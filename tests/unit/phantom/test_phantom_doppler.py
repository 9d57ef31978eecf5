from __future__ import annotations

import numpy as np
import pytest

from inference.regions import ultrasound_regions
from phantom.doppler import colour_box, doppler_image, flow_map, make_doppler_dataset
from phantom.header import InstanceIdentity
from phantom.node import make_node, node_mask

ROWS, COLS = 128, 160
IDENTITY = InstanceIdentity("SYN1", "A1", "1.2.3", "1.2.3.4", "1.2.3.4.5", 2, "DOPPLER")


def _radius(node, rows: int, cols: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    (cx, cy), (ax, ay) = node.center_xy, node.semi_axes_xy
    return np.sqrt(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2)


@pytest.mark.parametrize("seed", range(4))
def test_flow_map_benign_hilar_malignant_peripheral(seed: int) -> None:
    benign = make_node(ROWS, COLS, seed, malignant=False)
    malignant = make_node(ROWS, COLS, seed, malignant=True)
    benign_flow = flow_map(benign, ROWS, COLS, seed) != 0
    malignant_flow = flow_map(malignant, ROWS, COLS, seed) != 0
    benign_inside = benign_flow & node_mask(benign, ROWS, COLS)
    malignant_inside = malignant_flow & node_mask(malignant, ROWS, COLS)

    assert np.median(_radius(benign, ROWS, COLS)[benign_inside]) < 0.6
    assert np.median(_radius(malignant, ROWS, COLS)[malignant_inside]) > 0.7


def test_flow_map_only_inside_colour_box() -> None:
    node = make_node(ROWS, COLS, 1, malignant=True)
    flow = flow_map(node, ROWS, COLS, 1)
    x0, y0, x1, y1 = colour_box(node, ROWS, COLS)

    outside = np.ones_like(flow, bool)
    outside[y0 : y1 + 1, x0 : x1 + 1] = False
    assert not flow[outside].any()
    assert (flow > 0).any() and (flow < 0).any()


def test_doppler_image_red_towards_blue_away_grey_elsewhere() -> None:
    node = make_node(ROWS, COLS, 2, malignant=False)
    rgb, flow = doppler_image(node, ROWS, COLS, 2)

    assert rgb.shape == (ROWS, COLS, 3) and rgb.dtype == np.uint8
    assert (rgb[flow > 0, 0] > rgb[flow > 0, 2]).all()
    assert (rgb[flow < 0, 2] > rgb[flow < 0, 0]).all()
    grey = rgb[flow == 0]
    assert (grey[:, 0] == grey[:, 1]).all() and (grey[:, 1] == grey[:, 2]).all()


def test_make_doppler_dataset_colour_flow_region_rgb() -> None:
    node = make_node(ROWS, COLS, 3, malignant=True)

    ds, _ = make_doppler_dataset(node, ROWS, COLS, 3, IDENTITY)
    bare, _ = make_doppler_dataset(node, ROWS, COLS, 3, IDENTITY, colour_flow_region=False)

    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    assert [r.data_type for r in ultrasound_regions(ds)] == [1, 2]
    assert [r.data_type for r in ultrasound_regions(bare)] == [1]
    assert ds.ImageType[3] == "0011"
    assert ds.PatientName == "SYNTHETIC^PHANTOM"
