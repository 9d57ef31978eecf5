"""Colour Doppler of a phantom node: flow colours over the grey B-mode, in an RGB image.

Benign nodes show hilar flow (a vessel entering at the hilum and branching along the long
axis); malignant nodes show peripheral (capsular) and chaotic flow. Red is flow towards the
probe, blue away from it. The image carries a tissue region (RegionDataType 1) over the whole
frame and a colour-flow region (RegionDataType 2) over the colour box, as scanners write.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from phantom.header import (
    COLOUR_FLOW_DATA_TYPE,
    MODE_2D_COLOUR,
    InstanceIdentity,
    calibrated_region,
    us_dataset,
)
from phantom.node import PhantomNode, node_mask, render_bmode

RED = np.array([230, 40, 30], np.float32)
BLUE = np.array([30, 70, 235], np.float32)


def _segment(
    xx: np.ndarray, yy: np.ndarray, a: tuple[float, float], b: tuple[float, float], width: float
) -> np.ndarray:
    """Pixels within ``width / 2`` of the segment a-b."""
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    length2 = max(dx * dx + dy * dy, 1e-6)
    t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / length2, 0.0, 1.0)
    return (xx - ax - t * dx) ** 2 + (yy - ay - t * dy) ** 2 <= (width / 2.0) ** 2


def colour_box(node: PhantomNode, rows: int, cols: int) -> tuple[int, int, int, int]:
    """The colour box (x0, y0, x1, y1), inclusive: the node with a 40 % margin, in the frame."""
    (cx, cy), (ax, ay) = node.center_xy, node.semi_axes_xy
    x0, x1 = int(max(0, cx - 1.4 * ax)), int(min(cols - 1, cx + 1.4 * ax))
    y0, y1 = int(max(0, cy - 1.4 * ay - 10)), int(min(rows - 1, cy + 1.4 * ay + 10))
    return x0, y0, x1, y1


def flow_map(node: PhantomNode, rows: int, cols: int, seed: int) -> np.ndarray:
    """Signed flow per pixel: +1 towards the probe (red), -1 away (blue), 0 none."""
    rng = np.random.default_rng([seed, 23])
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    (cx, cy), (ax, ay) = node.center_xy, node.semi_axes_xy
    flow = np.zeros((rows, cols), np.int8)
    inside = node_mask(node, rows, cols)
    if node.malignant:
        radius = np.sqrt(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2)
        angle = np.arctan2((yy - cy) / ay, (xx - cx) / ax)
        band = (radius >= 0.72) & (radius <= 1.05)
        for start in rng.uniform(-np.pi, np.pi, 4):
            span = rng.uniform(0.5, 0.9)
            arc = band & (np.mod(angle - start, 2 * np.pi) <= span)
            flow[arc] = 1 if rng.uniform() < 0.5 else -1
        for _ in range(3):  # chaotic penetrating vessels
            a = (float(cx + ax * rng.uniform(-0.9, 0.9)), float(cy - ay * rng.uniform(0.6, 0.95)))
            b = (float(cx + ax * rng.uniform(-0.5, 0.5)), float(cy + ay * rng.uniform(-0.3, 0.5)))
            flow[_segment(xx, yy, a, b, 3.0) & inside] = -1
    if not node.looks_malignant:  # hilar flow: benign, or mixed with the above (ambiguous)
        hx, hy = node.hilum_center_xy
        entry = (float(hx), float(cy + ay * 1.15))
        flow[_segment(xx, yy, entry, (hx, hy), 5.0)] = 1
        for sign in (-1.0, 1.0):
            tip = (float(hx + sign * ax * 0.75), float(hy + rng.uniform(-0.3, 0.3) * ay))
            flow[_segment(xx, yy, (hx, hy), tip, 4.0) & inside] = 1
            twig = (float(hx + sign * ax * 0.45), float(hy - ay * 0.55))
            flow[_segment(xx, yy, (hx + sign * ax * 0.3, hy), twig, 3.0) & inside] = -1
    # a feeding artery and its vein running past the node
    for sign, width in ((1, 7.0), (-1, 6.0)):
        level = cy + (ay + 12.0) * (1 if sign > 0 else -1)
        flow[_segment(xx, yy, (cx - 1.4 * ax, level), (cx + 1.4 * ax, level + 6.0), width)] = sign
    x0, y0, x1, y1 = colour_box(node, rows, cols)
    outside = np.ones((rows, cols), bool)
    outside[y0 : y1 + 1, x0 : x1 + 1] = False
    flow[outside] = 0
    return flow


def doppler_image(
    node: PhantomNode, rows: int, cols: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 colour Doppler frame and its signed flow map."""
    grey = render_bmode(node, rows, cols, seed).astype(np.float32)
    flow = flow_map(node, rows, cols, seed)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    rgb[flow > 0] = RED
    rgb[flow < 0] = BLUE
    return np.clip(rgb, 0, 255).astype(np.uint8), flow


def make_doppler_dataset(
    node: PhantomNode,
    rows: int,
    cols: int,
    seed: int,
    identity: InstanceIdentity,
    *,
    colour_flow_region: bool = True,
) -> tuple[Dataset, np.ndarray]:
    """A US Image of the node in colour Doppler (RGB) and its flow map.

    ``colour_flow_region=False`` leaves out the RegionDataType 2 region (as some scanners do),
    so only the coloured pixels say it is Doppler.
    """
    rgb, flow = doppler_image(node, rows, cols, seed)
    regions = [calibrated_region((0, 0, cols - 1, rows - 1), node.mm_per_pixel)]
    if colour_flow_region:
        box = colour_box(node, rows, cols)
        regions.append(calibrated_region(box, node.mm_per_pixel, COLOUR_FLOW_DATA_TYPE))
    return us_dataset(rgb, identity, regions, multi_frame=False, modes=MODE_2D_COLOUR), flow
