"""The one place a network's class probability becomes the probability a model reports.

``run_model`` (the node) and ``lnm-node evaluate`` both call :func:`calibrate` with the spec's
``calibration``; the spec's threshold is compared with what it returns.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from inference.registry import Calibration, CalibrationMethod

#: probabilities are kept this far from 0 and 1 before their logit is taken
EPSILON = 1e-12


def logits_of(probabilities: ArrayLike) -> np.ndarray:
    """The logits (float64) of probabilities, clipped to [EPSILON, 1 - EPSILON] first."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1.0 - EPSILON)
    return np.log(p) - np.log1p(-p)


def calibrate(calibration: Calibration | None, probabilities: ArrayLike) -> np.ndarray:
    """The calibrated probabilities (float64, same shape) of the network's ``probabilities``
    (the sigmoid of its class logit).

    None or method ``none``: unchanged. ``temperature``: sigmoid(logit(p) / T).
    ``isotonic``: linear interpolation through the fitted points, flat beyond them.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if calibration is None or calibration.method is CalibrationMethod.NONE:
        return p
    if calibration.method is CalibrationMethod.TEMPERATURE:
        scaled = logits_of(p) / float(calibration.temperature)  # type: ignore[arg-type]
        return 1.0 / (1.0 + np.exp(-scaled))
    x, y = zip(*calibration.points, strict=True)  # type: ignore[arg-type]
    return np.interp(p, np.asarray(x), np.asarray(y))
