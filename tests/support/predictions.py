"""Phantom sources and predictions made on them, for encoder and validator tests."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from inference.prediction import Call, Prediction
from inference.registry import ModelSpec
from phantom.us_dicom import make_us_dataset
from tests.support.models import spec_fields


def model_spec(**overrides: Any) -> ModelSpec:
    """The spec of the model :func:`prediction_for` names (``tiny-ynet@0.1.0``), with
    ``overrides`` of its fields (e.g. ``outputs``)."""
    return ModelSpec.model_validate(spec_fields(**overrides))


def roundtrip(dataset: Dataset) -> Dataset:
    """Write ``dataset`` to bytes (as a DICOM file) and read it back."""
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(BytesIO(buffer.getvalue()))


def gaussian_heatmap(
    shape: tuple[int, int], center: tuple[float, float], sigma: float
) -> np.ndarray:
    """A [0, 1] blob on the frame grid, standing in for Grad-CAM."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    d2 = (xx - center[0]) ** 2 + (yy - center[1]) ** 2
    return np.exp(-d2 / (2 * sigma**2)).astype(np.float32)


LESION_OUTPUTS_FINDING = {
    "type": {"value": "52988006", "scheme": "SCT", "meaning": "Lesion"},
    "site": {"value": "76752008", "scheme": "SCT", "meaning": "Breast"},
    "call": {"value": "363346000", "scheme": "SCT", "meaning": "Malignant neoplastic disease"},
}


def lesion_spec() -> ModelSpec:
    """:func:`model_spec` of a breast-lesion model (the shipped ynet-busi's codes, threshold
    0.285): its outputs must say "Lesion", never "Lymph node"."""
    fields = spec_fields(threshold=0.285)
    fields["outputs"]["segments"][0].update(
        label="lesion",
        category={"value": "49755003", "scheme": "SCT", "meaning": "Morphologically Abnormal Structure"},
        type=LESION_OUTPUTS_FINDING["type"],
    )
    fields["outputs"]["finding"] = LESION_OUTPUTS_FINDING
    return ModelSpec.model_validate(fields)


def prediction_for(
    source: Dataset,
    mask: np.ndarray | None,
    *,
    probability: float = 0.8,
    call: Call = Call.PRESENT,
    frame_index: int = 0,
    notes: list[str] | None = None,
    **overrides: Any,
) -> Prediction:
    """A Prediction on ``source`` (heatmap centred on the mask, or on the image)."""
    shape = (int(source.Rows), int(source.Columns))
    if mask is not None and np.asarray(mask).any():
        rows, cols = np.nonzero(mask)
        center = (float(cols.mean()), float(rows.mean()))
    else:
        center = (shape[1] / 2, shape[0] / 2)
    fields: dict[str, Any] = {
        "model_key": "tiny-ynet",
        "model_version": "0.1.0",
        "model_name": "Tiny Y-Net",
        "source_path": Path("source.dcm"),
        "source_sop_instance_uid": str(source.SOPInstanceUID),
        "frame_index": frame_index,
        "probability": probability,
        "threshold": 0.5,
        "call": call,
        "mask": None if mask is None else np.asarray(mask).astype(bool),
        "heatmap": gaussian_heatmap(shape, center, min(shape) / 8),
        "notes": list(notes or []),
    }
    fields.update(overrides)
    return Prediction(**fields)


def phantom_source(**kwargs: Any) -> tuple[Dataset, np.ndarray]:
    """A phantom source read back from bytes (as the node receives it) and its mask."""
    dataset, mask, _ = make_us_dataset(**kwargs)
    return roundtrip(dataset), mask
