"""Synthetic Doppler, cine and CEUS inputs built on the B-mode phantom, for demonstration models.

Every array here is synthetic: derived from :func:`phantom.us_dicom.bmode_image` (a speckled
frame with one oval node, rounder and without a fatty hilum when malignant) and the node's
mask. The malignant cue of each modality is a cartoon of a published sign, nothing more:

* Doppler: benign nodes carry central (hilar) flow, malignant ones peripheral flow.
* cine: the same node over ``frames`` frames with fresh speckle and a slow drift.
* CEUS: key frames of wash-in; benign nodes enhance evenly, malignant ones leave a central
  non-enhancing (necrotic) area.

All values are grey or colour in [0, 1], the range of the models' tensor contracts.
"""

from __future__ import annotations

import numpy as np

from phantom.us_dicom import bmode_image


def _node(size: int, seed: int, malignant: bool) -> tuple[np.ndarray, np.ndarray]:
    image, mask, _ = bmode_image(size, size, seed, malignant)
    return image.astype(np.float32) / 255.0, mask.astype(bool)


def _radius(mask: np.ndarray) -> np.ndarray:
    """Normalised distance from the node centre: 0 at the centre, 1 at the node's rim."""
    rows, cols = np.nonzero(mask)
    cy, cx = rows.mean(), cols.mean()
    ry, rx = max(np.ptp(rows) / 2.0, 1.0), max(np.ptp(cols) / 2.0, 1.0)
    yy, xx = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]].astype(np.float32)
    return np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)


def bmode(size: int, seed: int, malignant: bool) -> np.ndarray:
    """A grey B-mode frame ``(size, size)`` in [0, 1]."""
    return _node(size, seed, malignant)[0]


def doppler(size: int, seed: int, malignant: bool) -> tuple[np.ndarray, np.ndarray]:
    """(B-mode ``(S,S)``, colour Doppler ``(3,S,S)``) of one node, both in [0, 1]."""
    grey, mask = _node(size, seed, malignant)
    rng = np.random.default_rng(seed + 7919)
    radius = _radius(mask)
    band = (radius > 0.6) if malignant else (radius < 0.45)
    flow = mask & band & (rng.random(mask.shape) < 0.5)
    colour = np.repeat(grey[None], 3, axis=0)
    colour[0][flow] = 0.9  # red: flow towards the probe
    colour[1][flow] = 0.1
    colour[2][flow] = rng.uniform(0.0, 0.4, size=int(flow.sum()))
    return grey, colour


def cine(size: int, frames: int, seed: int, malignant: bool) -> np.ndarray:
    """A grey cine ``(frames, S, S)`` in [0, 1]: fresh speckle per frame, slow drift."""
    grey, _ = _node(size, seed, malignant)
    rng = np.random.default_rng(seed + 104729)
    clip = []
    for t in range(frames):
        shifted = np.roll(grey, shift=(t // 4, t // 5), axis=(0, 1))
        speckle = rng.rayleigh(0.8, size=grey.shape).astype(np.float32) / 0.8
        clip.append(np.clip(shifted * (0.7 + 0.3 * speckle), 0.0, 1.0))
    return np.stack(clip).astype(np.float32)


def ceus(size: int, key_frames: int, seed: int, malignant: bool) -> tuple[np.ndarray, np.ndarray]:
    """(B-mode ``(S,S)``, CEUS key frames ``(K,S,S)`` at equal intervals of the wash-in)."""
    grey, mask = _node(size, seed, malignant)
    rng = np.random.default_rng(seed + 1299709)
    radius = _radius(mask)
    perfused = mask & ~(radius < 0.5) if malignant else mask
    times = np.linspace(0.1, 1.0, key_frames)
    frames = []
    for t in times:
        uptake = t * np.exp(1.0 - t)  # gamma-variate-like wash-in, peak 1 at t = 1
        background = 0.15 * uptake * rng.random(mask.shape)
        node = 0.8 * uptake * (0.6 + 0.4 * rng.random(mask.shape))
        frames.append(np.where(perfused, node, background))
    return grey, np.clip(np.stack(frames), 0.0, 1.0).astype(np.float32)
