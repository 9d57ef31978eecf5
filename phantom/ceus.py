"""Contrast-enhanced ultrasound (CEUS) cine of a phantom node: wash-in and wash-out curves.

Each compartment (surrounding tissue, node) enhances along a gamma-variate time-intensity
curve. Benign nodes enhance homogeneously, centrifugally from the hilum, with a slow wash-out;
malignant nodes enhance earlier, heterogeneously, wash out fast, and a necrotic area stays
black (a perfusion defect). Contrast mode shows microbubble speckle on a dark background.
The series is described "CEUS" (what the node's default CEUS rule looks for).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from pydicom.dataset import Dataset

from phantom.header import InstanceIdentity, calibrated_region, us_dataset
from phantom.node import PhantomNode, hilum_mask, necrosis_mask, node_mask, speckle


def perfusion_defect_mask(node: PhantomNode, rows: int, cols: int) -> np.ndarray:
    """The non-enhancing area only CEUS shows (an ambiguous malignant node's), or none."""
    if node.perfusion_defect is None:
        return np.zeros((rows, cols), bool)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    x, y, radius = node.perfusion_defect
    return ((xx - x) ** 2 + (yy - y) ** 2 <= radius**2) & node_mask(node, rows, cols)


CEUS_SERIES_DESCRIPTION = "CEUS"


@dataclass(frozen=True)
class EnhancementCurve:
    """A gamma-variate time-intensity curve: arrival, time to peak (s), peak, wash-out shape."""

    arrival_s: float
    time_to_peak_s: float
    peak: float
    alpha: float

    def at(self, t: np.ndarray) -> np.ndarray:
        """Intensity (0-255 scale) at times ``t`` in seconds."""
        s = np.clip((np.asarray(t, np.float64) - self.arrival_s) / self.time_to_peak_s, 0.0, None)
        return self.peak * s**self.alpha * np.exp(self.alpha * (1.0 - s))


def curves(malignant: bool) -> tuple[EnhancementCurve, EnhancementCurve]:
    """(tissue curve, node curve) for a benign or malignant node."""
    tissue = EnhancementCurve(arrival_s=8.0, time_to_peak_s=12.0, peak=70.0, alpha=2.0)
    if malignant:
        return tissue, EnhancementCurve(arrival_s=5.0, time_to_peak_s=7.0, peak=190.0, alpha=3.0)
    return tissue, EnhancementCurve(arrival_s=7.0, time_to_peak_s=10.0, peak=150.0, alpha=1.5)


def ceus_frames(
    node: PhantomNode, rows: int, cols: int, seed: int, frames: int, frame_time_s: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames, rows, cols) uint8 contrast cine and the tissue and node curves per frame."""
    times = np.arange(frames) * frame_time_s
    tissue_curve, node_curve = curves(node.malignant)
    inside = node_mask(node, rows, cols)
    defect = necrosis_mask(node, rows, cols) | perfusion_defect_mask(node, rows, cols)
    hilum = hilum_mask(node, rows, cols)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    (cx, cy), (ax, ay) = node.center_xy, node.semi_axes_xy
    radius = np.sqrt(((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2)
    if node.malignant:
        pattern = 0.6 + 0.4 * (np.sin(xx / 4.0 + seed) * np.sin(yy / 6.0) > -0.2)
        delay = 1.5 * (1.0 - radius.clip(0, 1))  # centripetal: the rim first
    else:
        pattern = np.ones((rows, cols), np.float32)
        delay = 2.0 * radius.clip(0, 1)  # centrifugal: from the hilum outwards
        delay = np.where(hilum, 0.0, delay)
    stack = []
    for index, t in enumerate(times):
        bubbles = speckle((rows, cols), seed * 100 + index + 3)
        tissue = tissue_curve.at(np.array(t)) * bubbles
        enhanced = node_curve.at(t - delay) * pattern * bubbles
        image = np.where(inside, enhanced, tissue)
        image = np.where(defect, 2.0 * bubbles, image)
        stack.append(np.clip(image, 0, 255).astype(np.uint8))
    return np.stack(stack), tissue_curve.at(times), node_curve.at(times)


def make_ceus_dataset(
    node: PhantomNode,
    rows: int,
    cols: int,
    seed: int,
    identity: InstanceIdentity,
    *,
    frames: int = 20,
    frame_time_ms: float = 1000.0,
) -> tuple[Dataset, np.ndarray]:
    """A US Multi-frame Image of the contrast cine, and the node's curve sampled per frame.

    The SeriesDescription is always :data:`CEUS_SERIES_DESCRIPTION`.
    """
    stack, _, node_curve = ceus_frames(node, rows, cols, seed, frames, frame_time_ms / 1000.0)
    regions = [calibrated_region((0, 0, cols - 1, rows - 1), node.mm_per_pixel)]
    identity = replace(identity, series_description=CEUS_SERIES_DESCRIPTION)
    dataset = us_dataset(stack, identity, regions, multi_frame=True, frame_time_ms=frame_time_ms)
    return dataset, node_curve
