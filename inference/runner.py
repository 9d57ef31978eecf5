"""Run one registered image model on one study: select, decode, crop, infer, explain, measure."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inference.frames import frame_count
from inference.gradcam import gradcam
from inference.measure import largest_component, measure_axes
from inference.prediction import Call, Prediction
from inference.regions import tissue_box, tissue_regions
from inference.registry import ModelInput, ModelSpec, RegistryError
from inference.selection import select_input
from inference.transforms import to_grey_unit, to_model_input, to_source_grid

logger = logging.getLogger(__name__)

MASK_THRESHOLD = 0.5
NOTE_NO_TISSUE_REGION = "no ultrasound tissue region: the model saw the whole image"


def image_input(spec: ModelSpec) -> ModelInput:
    """The spec's one single-frame grey [0, 1] input, or :class:`RegistryError` if it has other."""
    if len(spec.inputs) != 1:
        raise RegistryError(
            f"model {spec.ref}: the image runner takes one input, not {len(spec.inputs)}"
        )
    model_input = spec.inputs[0]
    contract = model_input.contract
    if (contract.channels, contract.frames, contract.range) != (1, 1, (0.0, 1.0)):
        raise RegistryError(
            f"model {spec.ref}: the image runner feeds 1 channel, 1 frame, range (0, 1); "
            f"input {model_input.name!r} asks for {contract}"
        )
    return model_input


def _into_frame(
    crop_map: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int]
) -> np.ndarray:
    """A map on the crop's grid placed into a zero map of the full frame."""
    x0, y0, x1, y1 = box
    full = np.zeros(shape, dtype=crop_map.dtype)
    full[y0:y1, x0:x1] = crop_map
    return full


def _crop_box(box: tuple[int, int, int, int], shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` clipped to the frame; the whole frame when the clip is empty."""
    rows, cols = shape
    x0, y0, x1, y1 = max(box[0], 0), max(box[1], 0), min(box[2], cols), min(box[3], rows)
    if x1 <= x0 or y1 <= y0:
        return 0, 0, cols, rows
    return x0, y0, x1, y1


def run_model(
    spec: ModelSpec, network: nn.Module, paths: Iterable[Path], device: str | torch.device
) -> Prediction:
    """Run ``network`` (loaded for ``spec``, on ``device``) on the study made of ``paths``.

    Raises :class:`kernel.errors.InvalidInput` when the study holds no usable input.
    """
    started = time.perf_counter()
    model_input = image_input(spec)
    selection = select_input(paths, model_input.rule)
    header, frame = selection.dataset, selection.frame
    shape = (int(frame.shape[0]), int(frame.shape[1]))
    notes: list[str] = []

    box = _crop_box(tissue_box(header), shape)
    if not tissue_regions(header):
        notes.append(NOTE_NO_TISSUE_REGION)
    count = frame_count(header)
    if count > 1:
        notes.append(f"cine of {count} frames: frame {selection.frame_index + 1} was used")
    x0, y0, x1, y1 = box
    crop_shape = (y1 - y0, x1 - x0)
    x = to_model_input(to_grey_unit(frame[y0:y1, x0:x1]), spec.input_size).to(device)

    with torch.inference_mode():
        seg_logits, cls_logits = network(x)
        probability = float(torch.sigmoid(cls_logits).flatten()[0])
        seg_probability = torch.sigmoid(seg_logits)
    heat = gradcam(network, x, spec.outputs.heatmap.layer)

    crop_mask = to_source_grid(seg_probability, crop_shape) > MASK_THRESHOLD
    component = largest_component(_into_frame(crop_mask, box, shape))
    mask = component if component.any() else None
    crop_heat = np.clip(to_source_grid(heat, crop_shape), 0.0, 1.0)
    heatmap = _into_frame(crop_heat.astype(np.float32), box, shape)

    measurements, note = measure_axes(component, header)
    if note is not None:
        notes.append(note)

    call = Call.PRESENT if probability >= spec.threshold else Call.ABSENT
    logger.info(
        "model %s ran in %.2f s: probability %.3f, call %s",
        spec.ref,
        time.perf_counter() - started,
        probability,
        call.value,
    )
    return Prediction(
        model_key=spec.key,
        model_version=spec.version,
        model_name=spec.name,
        source_path=selection.path,
        source_sop_instance_uid=str(header.SOPInstanceUID),
        frame_index=selection.frame_index,
        probability=probability,
        threshold=spec.threshold,
        call=call,
        mask=mask,
        heatmap=heatmap,
        measurements=measurements,
        notes=notes,
    )
