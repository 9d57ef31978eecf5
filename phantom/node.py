"""A B-mode lymph node with the features that tell malignant from benign, and its ground truth.

Benign: oval (short-to-long axis ratio 0.4-0.55), thin even hypoechoic cortex, an echogenic
central fatty hilum. Malignant: round (ratio 0.7-0.95), darker heterogeneous cortex, the hilum
lost or pushed aside by eccentric cortical thickening, sometimes microcalcifications (bright
dots with a posterior shadow) and coagulation necrosis (an anechoic area). Speckle is Rayleigh
noise with depth attenuation. The node's long axis is horizontal; everything is deterministic
for a seed.

An *ambiguous* node looks the same in B-mode whatever its pathology (an oval node, ratio
0.5-0.7, with a central hilum and an even cortex, drawn from one distribution for both), so
only the other modalities tell: a malignant one keeps its peripheral or mixed Doppler flow,
its CEUS enhancement (heterogeneous, early, fast wash-out, a perfusion defect) and shows
microcalcifications and a malignant cortex in some frames of the cine sweep only
(``hidden_calcifications``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PhantomNode:
    """Ground truth of one synthetic node, in pixels of the scene (frame offset 0)."""

    center_xy: tuple[float, float]
    semi_axes_xy: tuple[float, float]
    malignant: bool
    hilum: bool
    hilum_center_xy: tuple[float, float]
    cortex_thickening: bool
    calcifications: tuple[tuple[float, float], ...]
    necrosis: tuple[float, float, float] | None
    mm_per_pixel: float
    ambiguous: bool = False
    #: microcalcifications an ambiguous malignant node shows in part of the cine only
    hidden_calcifications: tuple[tuple[float, float], ...] = ()
    #: a perfusion defect (x, y, radius) only CEUS shows (ambiguous malignant nodes)
    perfusion_defect: tuple[float, float, float] | None = None

    @property
    def looks_malignant(self) -> bool:
        """Whether its B-mode shows the malignant signs (an ambiguous node's does not)."""
        return self.malignant and not self.ambiguous

    @property
    def long_axis_mm(self) -> float:
        """Long axis (horizontal diameter) in mm."""
        return 2.0 * max(self.semi_axes_xy) * self.mm_per_pixel

    @property
    def short_axis_mm(self) -> float:
        """Short axis (vertical diameter) in mm."""
        return 2.0 * min(self.semi_axes_xy) * self.mm_per_pixel

    @property
    def short_to_long_ratio(self) -> float:
        """Short axis over long axis (above 0.5 suggests a malignant, round node)."""
        return self.short_axis_mm / self.long_axis_mm


def _ambiguous_node(
    rows: int, cols: int, seed: int, malignant: bool, mm_per_pixel: float
) -> PhantomNode:
    """A node whose B-mode does not depend on ``malignant``; its hidden signs do."""
    rng = np.random.default_rng([seed, 5])  # the same draws for either label
    cx, cy = cols * rng.uniform(0.42, 0.58), rows * rng.uniform(0.42, 0.58)
    ax = cols * rng.uniform(0.15, 0.21)
    ay = min(ax * rng.uniform(0.5, 0.7), rows * 0.3)
    hidden: tuple[tuple[float, float], ...] = ()
    defect = None
    if malignant:
        signs = np.random.default_rng([seed, 6])
        angles = signs.uniform(0, 2 * np.pi, 5)
        radii = np.sqrt(signs.uniform(0.05, 0.5, 5))
        hidden = tuple(
            (float(cx + r * ax * np.cos(a)), float(cy + r * ay * np.sin(a)))
            for a, r in zip(angles, radii, strict=True)
        )
        side = 1.0 if signs.uniform() < 0.5 else -1.0
        defect = (float(cx + side * ax * 0.4), float(cy), float(ay * signs.uniform(0.35, 0.5)))
    return PhantomNode(
        center_xy=(float(cx), float(cy)),
        semi_axes_xy=(float(ax), float(ay)),
        malignant=malignant,
        hilum=True,
        hilum_center_xy=(float(cx), float(cy)),
        cortex_thickening=False,
        calcifications=(),
        necrosis=None,
        mm_per_pixel=mm_per_pixel,
        ambiguous=True,
        hidden_calcifications=hidden,
        perfusion_defect=defect,
    )


def is_ambiguous(seed: int, fraction: float) -> bool:
    """Whether study ``seed`` draws an ambiguous node when ``fraction`` of them are."""
    return fraction > 0.0 and float(np.random.default_rng([seed, 99]).uniform()) < fraction


def make_node(
    rows: int,
    cols: int,
    seed: int,
    malignant: bool,
    mm_per_pixel: float = 0.1,
    ambiguous: bool = False,
) -> PhantomNode:
    """Draw a node's geometry and features for ``seed`` (an ambiguous one when asked)."""
    if ambiguous:
        return _ambiguous_node(rows, cols, seed, malignant, mm_per_pixel)
    rng = np.random.default_rng([seed, 1 if malignant else 0, 7])
    cx, cy = cols * rng.uniform(0.42, 0.58), rows * rng.uniform(0.42, 0.58)
    ax = cols * rng.uniform(0.15, 0.21)
    ay = ax * (rng.uniform(0.7, 0.95) if malignant else rng.uniform(0.4, 0.55))
    ay = min(ay, rows * 0.3)
    if malignant:
        hilum = bool(rng.uniform() < 0.35)
        side = 1.0 if rng.uniform() < 0.5 else -1.0
        hilum_center = (cx + side * ax * 0.5, cy + ay * 0.3)
        thickening = True
        count = int(rng.integers(0, 5))
        angles = rng.uniform(0, 2 * np.pi, count)
        radii = np.sqrt(rng.uniform(0.0, 0.55, count))
        calcifications = tuple(
            (float(cx + r * ax * np.cos(a)), float(cy + r * ay * np.sin(a)))
            for a, r in zip(angles, radii, strict=True)
        )
        necrosis = None
        if rng.uniform() < 0.5:
            radius = ay * rng.uniform(0.25, 0.4)
            necrosis = (float(cx - side * ax * 0.25), float(cy), float(radius))
    else:
        hilum, hilum_center, thickening = True, (cx, cy), False
        calcifications, necrosis = (), None
    return PhantomNode(
        center_xy=(float(cx), float(cy)),
        semi_axes_xy=(float(ax), float(ay)),
        malignant=malignant,
        hilum=hilum,
        hilum_center_xy=(float(hilum_center[0]), float(hilum_center[1])),
        cortex_thickening=thickening,
        calcifications=calcifications,
        necrosis=necrosis,
        mm_per_pixel=mm_per_pixel,
    )


def _grid(rows: int, cols: int, offset: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Scene coordinates (x, y) of each frame pixel when the probe moved by ``offset``."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    return xx + offset[0], yy + offset[1]


def node_mask(
    node: PhantomNode, rows: int, cols: int, offset: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Boolean mask of the node on a frame whose top-left pixel is scene point ``offset``."""
    xx, yy = _grid(rows, cols, offset)
    (cx, cy), (ax, ay) = node.center_xy, node.semi_axes_xy
    return ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0


def hilum_mask(
    node: PhantomNode, rows: int, cols: int, offset: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Boolean mask of the fatty hilum (empty when the node has none)."""
    if not node.hilum:
        return np.zeros((rows, cols), bool)
    xx, yy = _grid(rows, cols, offset)
    hx, hy = node.hilum_center_xy
    ax, ay = node.semi_axes_xy
    scale = (0.25, 0.2) if node.looks_malignant else (0.55, 0.32)
    inside = ((xx - hx) / (ax * scale[0])) ** 2 + ((yy - hy) / (ay * scale[1])) ** 2 <= 1.0
    return inside & node_mask(node, rows, cols, offset)


def necrosis_mask(
    node: PhantomNode, rows: int, cols: int, offset: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Boolean mask of the necrotic area (empty when there is none)."""
    if node.necrosis is None:
        return np.zeros((rows, cols), bool)
    xx, yy = _grid(rows, cols, offset)
    nx, ny, radius = node.necrosis
    return ((xx - nx) ** 2 + (yy - ny) ** 2 <= radius**2) & node_mask(node, rows, cols, offset)


def speckle(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Rayleigh speckle (mean about 1) of ``shape``, deterministic for ``seed``."""
    return np.random.default_rng([seed, 11]).rayleigh(0.8, size=shape).astype(np.float32)


def render_bmode(
    node: PhantomNode,
    rows: int,
    cols: int,
    seed: int,
    *,
    offset: tuple[int, int] = (0, 0),
    margin: int = 0,
    decorrelation: float = 0.0,
    frame_seed: int = 0,
) -> np.ndarray:
    """The grey uint8 B-mode frame of the scene seen from ``offset``.

    The speckle field is drawn once for ``seed`` over the frame plus ``margin`` pixels on each
    side and moves with the scene (probe motion); ``decorrelation`` in [0, 1] blends in fresh
    speckle drawn for ``frame_seed``. ``|offset|`` must not exceed ``margin``.
    """
    field = speckle((rows + 2 * margin, cols + 2 * margin), seed)
    y0, x0 = margin + offset[1], margin + offset[0]
    grain = field[y0 : y0 + rows, x0 : x0 + cols]
    if decorrelation > 0.0:
        fresh = speckle((rows, cols), seed * 1000 + frame_seed + 1)
        grain = (1.0 - decorrelation) * grain + decorrelation * fresh
    xx, yy = _grid(rows, cols, offset)
    depth = 1.0 - 0.45 * (yy - offset[1]) / rows
    image = 105.0 * depth * grain

    inside = node_mask(node, rows, cols, offset)
    (cx, cy), (ax, ay) = node.center_xy, node.semi_axes_xy
    if node.looks_malignant:
        texture = 0.75 + 0.25 * np.sin(xx / 5.0 + seed) * np.cos(yy / 7.0 - seed)
        cortex = 30.0 * texture * grain
    else:
        cortex = 42.0 * grain
    image = np.where(inside, cortex, image)
    rim = inside & (((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 >= 0.85)
    image = np.where(rim, image * 1.6, image)  # the echogenic capsule
    image = np.where(hilum_mask(node, rows, cols, offset), 160.0 * grain, image)
    image = np.where(necrosis_mask(node, rows, cols, offset), 6.0 * grain, image)
    for px, py in node.calcifications:
        dot = (xx - px) ** 2 + (yy - py) ** 2 <= 2.25
        shadow = (np.abs(xx - px) <= 2.0) & (yy > py + 2.0) & (yy < py + 30.0)
        image = np.where(shadow, image * 0.45, image)
        image = np.where(dot, 250.0, image)
    return np.clip(image, 0, 255).astype(np.uint8)


def bmode_phantom(
    rows: int, cols: int, seed: int, malignant: bool, mm_per_pixel: float = 0.1
) -> tuple[np.ndarray, np.ndarray, PhantomNode]:
    """A B-mode frame with one node: (uint8 image, boolean node mask, ground truth)."""
    node = make_node(rows, cols, seed, malignant, mm_per_pixel)
    return render_bmode(node, rows, cols, seed), node_mask(node, rows, cols), node
