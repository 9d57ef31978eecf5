from __future__ import annotations

import numpy as np
import pytest

from phantom.node import bmode_phantom, hilum_mask, make_node, necrosis_mask, node_mask

ROWS, COLS = 128, 160


@pytest.mark.parametrize("seed", range(6))
def test_make_node_benign_oval_with_central_hilum(seed: int) -> None:
    node = make_node(ROWS, COLS, seed, malignant=False)

    assert 0.4 <= node.short_to_long_ratio <= 0.55
    assert node.hilum and not node.cortex_thickening
    assert node.hilum_center_xy == node.center_xy
    assert node.necrosis is None and node.calcifications == ()


@pytest.mark.parametrize("seed", range(6))
def test_make_node_malignant_round_with_eccentric_thickening(seed: int) -> None:
    node = make_node(ROWS, COLS, seed, malignant=True)

    assert node.short_to_long_ratio >= 0.7
    assert node.cortex_thickening
    if node.hilum:
        assert node.hilum_center_xy != node.center_xy


def test_make_node_features_vary_over_seeds() -> None:
    nodes = [make_node(ROWS, COLS, seed, malignant=True) for seed in range(20)]

    assert any(n.necrosis is not None for n in nodes) and any(n.necrosis is None for n in nodes)
    assert any(n.calcifications for n in nodes) and any(not n.hilum for n in nodes)


def test_bmode_phantom_same_seed_same_pixels_other_seed_differs() -> None:
    first, mask, node = bmode_phantom(ROWS, COLS, 3, malignant=True)
    again, _, _ = bmode_phantom(ROWS, COLS, 3, malignant=True)
    other, _, _ = bmode_phantom(ROWS, COLS, 4, malignant=True)

    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.dtype == np.uint8 and first.shape == (ROWS, COLS)
    np.testing.assert_array_equal(mask, node_mask(node, ROWS, COLS))


def test_bmode_phantom_node_hypoechoic_hilum_echogenic() -> None:
    image, mask, node = bmode_phantom(ROWS, COLS, 1, malignant=False)
    hilum = hilum_mask(node, ROWS, COLS)
    cortex = mask & ~hilum

    assert image[cortex].mean() < 0.6 * image[~mask].mean()
    assert image[hilum].mean() > 2.0 * image[cortex].mean()


def test_bmode_phantom_necrosis_anechoic() -> None:
    seed = next(s for s in range(50) if make_node(ROWS, COLS, s, True).necrosis is not None)
    image, mask, node = bmode_phantom(ROWS, COLS, seed, malignant=True)
    necrosis = necrosis_mask(node, ROWS, COLS)

    assert necrosis.any()
    assert image[necrosis].mean() < 0.3 * image[mask & ~necrosis].mean()


def test_bmode_phantom_calcifications_bright() -> None:
    seed = next(s for s in range(50) if make_node(ROWS, COLS, s, True).calcifications)
    image, _, node = bmode_phantom(ROWS, COLS, seed, malignant=True)

    for x, y in node.calcifications:
        assert image[round(y), round(x)] == 250


def test_phantom_node_axes_in_mm_from_pixels() -> None:
    node = make_node(ROWS, COLS, 2, malignant=False, mm_per_pixel=0.2)

    assert node.long_axis_mm == pytest.approx(2 * node.semi_axes_xy[0] * 0.2)
    assert node.short_axis_mm == pytest.approx(2 * node.semi_axes_xy[1] * 0.2)
