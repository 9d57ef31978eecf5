"""A grey B-mode cine of a phantom node with probe motion (US Multi-frame Image).

The probe sways sideways and slightly in depth (a sine over the clip); the speckle moves with
the tissue and partly decorrelates from frame to frame, as in a real sweep. An ambiguous
malignant node shows its microcalcifications and malignant cortex only in the middle third of
the sweep (the slice that cuts through them): a sign seen in some frames only.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydicom.dataset import Dataset

from phantom.header import InstanceIdentity, calibrated_region, us_dataset
from phantom.node import PhantomNode, render_bmode

MOTION_PX = (6, 3)
"""Peak probe displacement (x, y) in pixels."""


def probe_offsets(frames: int) -> list[tuple[int, int]]:
    """The scene point at each frame's top-left pixel: one sway period over the clip."""
    phases = 2.0 * np.pi * np.arange(frames) / max(frames, 1)
    return [
        (round(MOTION_PX[0] * np.sin(p)), round(MOTION_PX[1] * np.sin(2.0 * p))) for p in phases
    ]


def cine_frames(
    node: PhantomNode, rows: int, cols: int, seed: int, frames: int
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """(frames, rows, cols) uint8 and the node centre (x, y) on each frame."""
    margin = max(MOTION_PX)
    stack, centres = [], []
    for index, (ox, oy) in enumerate(probe_offsets(frames)):
        shown = node
        if node.hidden_calcifications and frames // 3 <= index < 2 * frames // 3:
            shown = replace(node, ambiguous=False, calcifications=node.hidden_calcifications)
        stack.append(
            render_bmode(
                shown,
                rows,
                cols,
                seed,
                offset=(ox, oy),
                margin=margin,
                decorrelation=0.2,
                frame_seed=index,
            )
        )
        centres.append((node.center_xy[0] - ox, node.center_xy[1] - oy))
    return np.stack(stack), centres


def make_cine_dataset(
    node: PhantomNode,
    rows: int,
    cols: int,
    seed: int,
    identity: InstanceIdentity,
    *,
    frames: int = 24,
    frame_time_ms: float = 40.0,
) -> tuple[Dataset, list[tuple[float, float]]]:
    """A US Multi-frame Image of the swept node, and the node centre on each frame."""
    stack, centres = cine_frames(node, rows, cols, seed, frames)
    regions = [calibrated_region((0, 0, cols - 1, rows - 1), node.mm_per_pixel)]
    dataset = us_dataset(stack, identity, regions, multi_frame=True, frame_time_ms=frame_time_ms)
    return dataset, centres
