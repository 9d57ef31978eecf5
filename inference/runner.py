"""Run one registered model of any family on one study: select, decode, crop, infer, explain.

Every input of the spec is selected by its rule (``inference.selection``), each frame cropped to
its ultrasound tissue region and brought to the model grid with ``inference.transforms``. The
tensors follow the family conventions, passed positionally in the order of ``spec.inputs``:

- image / segcls: ``[1,C,S,S]``; dual: B-mode ``[1,C,S,S]`` and Doppler ``[1,3,S,S]``;
- video: a clip ``[1,C,T,S,S]`` of T frames sampled evenly over the cine;
- ceus: B-mode ``[1,1,S,S]`` and T CEUS key frames stacked as channels ``[1,T,S,S]``.

The input the spec names in ``outputs.heatmap.input`` (default: the first) is the one explained
(Grad-CAM) and the Prediction's source; its key frame is the frame the outputs show. Only a
segcls network's segmentation becomes a mask, measured in mm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pydicom
import torch
from torch import nn

from inference.batching import ForwardBatcher, forward_pass
from inference.calibration import calibrate
from inference.frames import frame_count
from inference.gate import GateReference, check
from inference.measure import lesion_regions, measure_component
from inference.prediction import Call, Prediction
from inference.regions import tissue_box, tissue_regions
from inference.registry import Family, ModelInput, ModelSpec, RegistryError
from inference.selection import CeusRule, InputSelection, read_headers, select_model_input
from inference.transforms import to_grey_unit, to_model_planes, to_source_grid

logger = logging.getLogger(__name__)

NOTE_NO_TISSUE_REGION = "no ultrasound tissue region: the model saw the whole image"
NOTE_NO_SEGMENTATION_FAMILY = "model family {family!r} does not segment: no outline, no measurement"


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


def frame_box(dataset: pydicom.Dataset, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The box a frame of ``shape`` (rows, cols) of ``dataset`` is cropped to for the model:
    its largest ultrasound tissue region (``tissue_box``) clipped to the frame, or the whole
    frame."""
    return _crop_box(tissue_box(dataset), shape)


def _unit_planes(
    frame: np.ndarray, box: tuple[int, int, int, int], model_input: ModelInput
) -> list[np.ndarray]:
    """The contract's planes of one decoded frame cropped to ``box``, in the contract's range."""
    contract = model_input.contract
    x0, y0, x1, y1 = box
    crop = np.asarray(frame)[y0:y1, x0:x1]
    if contract.channels == 1:
        planes = [to_grey_unit(crop)]
    elif contract.channels == 3:
        colour = crop[..., :3] if crop.ndim == 3 else np.repeat(crop[..., None], 3, axis=-1)
        planes = [to_grey_unit(colour[..., channel]) for channel in range(3)]
    else:
        raise RegistryError(
            f"input {model_input.name!r}: {contract.channels} channels per frame; "
            "the runner feeds 1 (grey) or 3 (RGB)"
        )
    low, high = contract.range
    if (low, high) == (0.0, 1.0):
        return planes  # to_grey_unit's range already
    return [low + (high - low) * plane for plane in planes]


def frame_planes(
    frame: np.ndarray, box: tuple[int, int, int, int], model_input: ModelInput
) -> torch.Tensor:
    """One decoded frame, cropped to ``box``, as ``[1,C,S,S]`` for ``model_input``'s contract.

    One channel: grey (colour reduced to luma). Three channels: R, G, B (a grey frame is
    repeated). Each plane is brought to [0, 1] (``to_grey_unit``), then to the contract's
    range, then onto the model grid (``to_model_planes``, as ``to_model_input``).
    """
    planes = _unit_planes(frame, box, model_input)
    return to_model_planes(np.stack(planes), model_input.contract.size)


def input_tensor(
    selection: InputSelection, model_input: ModelInput, family: Family
) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """The network tensor of one selected input, and the crop box used (source pixels).

    Every frame as :func:`frame_planes` brings it, all planes resampled in one call. A video
    input is ``[1,C,T,S,S]``; any other stacks its frames' channels ``[1,T*C,S,S]``.
    """
    first = selection.frames[0]
    shape = (int(first.shape[0]), int(first.shape[1]))
    box = frame_box(selection.dataset, shape)
    planes = [p for frame in selection.frames for p in _unit_planes(frame, box, model_input)]
    tensor = to_model_planes(np.stack(planes), model_input.contract.size)  # [1,T*C,S,S]
    if family is Family.VIDEO:
        frames, size = len(selection.frames), model_input.contract.size
        clip = tensor.reshape(1, frames, model_input.contract.channels, size, size)
        return clip.transpose(1, 2).contiguous(), box
    return tensor, box


def split_outputs(family: Family, output: object) -> tuple[torch.Tensor | None, torch.Tensor]:
    """``(segmentation logits or None, class logits)`` of a network output of ``family``."""
    if family is Family.SEGCLS:
        if not (isinstance(output, tuple | list) and len(output) == 2):
            raise RegistryError("a segcls network must return (segmentation, class) logits")
        return output[0], output[1]
    if isinstance(output, tuple | list):
        return None, output[-1]
    if not isinstance(output, torch.Tensor):
        raise RegistryError(f"a {family.value} network must return class logits")
    return None, output


def _notes(spec: ModelSpec, selections: Sequence[InputSelection]) -> list[str]:
    notes: list[str] = []
    explained = selections[spec.explained_index]
    if not tissue_regions(explained.dataset):
        notes.append(NOTE_NO_TISSUE_REGION)
    for selection in selections:
        count = frame_count(selection.dataset)
        if len(selection.frame_indices) > 1:
            unique = len(set(selection.frame_indices))
            notes.append(
                f"input {selection.name!r}: {len(selection.frame_indices)} frames sampled from "
                f"a cine of {count} frames ({unique} distinct)"
            )
        elif count > 1:
            notes.append(f"cine of {count} frames: frame {selection.key_frame + 1} was used")
    notes.extend(selection.note for selection in selections if selection.note)
    if len(selections) > 1:
        notes.append(f"inputs: {', '.join(f'{s.name} ({s.rule.value})' for s in selections)}")
    if spec.family is not Family.SEGCLS:
        notes.append(NOTE_NO_SEGMENTATION_FAMILY.format(family=spec.family.value))
    return notes


def study_inputs(
    spec: ModelSpec, paths: Iterable[Path], *, ceus: CeusRule | None = None
) -> tuple[list[InputSelection], list[tuple[torch.Tensor, tuple[int, int, int, int]]]]:
    """Every input of ``spec`` selected from the study made of ``paths``, and its network tensor
    with the crop box used: what :func:`run_model` feeds the network, and what a training
    dataset of the same spec stores (``training.study_dataset``).

    Raises :class:`inference.selection.MissingInput` naming the first input the study lacks.
    """
    headers = read_headers(paths)
    selections = [select_model_input(headers, item, ceus=ceus) for item in spec.inputs]
    built = [
        input_tensor(selection, item, spec.family)
        for selection, item in zip(selections, spec.inputs, strict=True)
    ]
    return selections, built


def run_model(
    spec: ModelSpec,
    network: nn.Module,
    paths: Iterable[Path],
    device: str | torch.device,
    *,
    ceus: CeusRule | None = None,
    gate: GateReference | None = None,
    passes: ForwardBatcher | None = None,
) -> Prediction:
    """Run ``network`` (loaded for ``spec``, on ``device``) on the study made of ``paths``.

    ``ceus`` is the rule that tells CEUS instances (the settings' one; its defaults otherwise).
    Raises :class:`inference.selection.MissingInput` (an ``InvalidInput``) naming the input
    when the study does not hold one of the spec's inputs. ``gate`` (the spec's reference,
    ``inference.gate.load_reference``) checks the forward pass's features: an input beyond the
    spec's gate threshold raises :class:`inference.gate.OutOfDomain`; None runs ungated.
    The spec's ``tta`` augmentations (``inference.tta``) are averaged into the probability and
    the segmentation; Grad-CAM and the gate see the un-augmented input.
    ``passes`` (a worker's :class:`inference.batching.ForwardBatcher`) runs the forward pass,
    batched with other jobs' passes of the same network; None runs it here, alone.
    """
    started = time.perf_counter()
    selections, built = study_inputs(spec, paths, ceus=ceus)
    tensors = [tensor.to(device) for tensor, _ in built]
    index = spec.explained_index
    explained, box = selections[index], built[index][1]
    key = explained.frames[explained.key_position]
    shape = (int(key.shape[0]), int(key.shape[1]))
    x0, y0, x1, y1 = box
    crop_shape = (y1 - y0, x1 - x0)

    # one pass (eval mode) gives the outputs and the map: no second forward for the prediction
    gate_layers = spec.scope.gate.layers if gate is not None and spec.scope.gate else None
    run_pass = forward_pass if passes is None else passes.run
    explanation, features = run_pass(
        network, tensors, spec.outputs.heatmap.layer, index, gate_layers, spec.tta
    )
    if gate_layers is not None:
        score = check(spec, gate, features)  # type: ignore[arg-type]
    # the output is averaged over the spec's test-time augmentations (inference.tta)
    seg_logits, cls_logits = split_outputs(spec.family, explanation.output)
    network_probability = float(torch.sigmoid(cls_logits.double()).flatten()[0])
    probability = float(calibrate(spec.calibration, network_probability))  # the spec's calibration
    seg_probability = None if seg_logits is None else torch.sigmoid(seg_logits)
    crop_heat = np.clip(to_source_grid(explanation.heatmap, crop_shape), 0.0, 1.0)
    heatmap = _into_frame(crop_heat.astype(np.float32), box, shape)

    notes = _notes(spec, selections)
    if spec.ensemble is not None:
        notes.append(f"ensemble of {spec.ensemble.members} networks: probabilities averaged")
    if spec.tta:
        notes.append(f"test-time augmentation averaged in: {', '.join(map(str, spec.tta))}")
    if gate_layers is not None:
        notes.append(
            f"in-domain check: score {score:.2f}, threshold {spec.scope.gate.threshold:.2f}"  # type: ignore[union-attr]
        )
    mask, measurements = None, None
    if seg_probability is not None:
        lesion = _into_frame(to_source_grid(seg_probability[:, :1], crop_shape), box, shape)
        component, others = lesion_regions(lesion)
        mask = component if component.any() else None
        measurements, note = measure_component(component, explained.dataset)
        notes.extend(n for n in (note, others) if n is not None)

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
        source_path=explained.path,
        source_sop_instance_uid=str(explained.dataset.SOPInstanceUID),
        frame_index=explained.key_frame,
        probability=probability,
        threshold=spec.threshold,
        call=call,
        mask=mask,
        heatmap=heatmap,
        measurements=measurements,
        notes=notes,
        inputs=[
            f"{s.dataset.SOPInstanceUID}#{','.join(map(str, s.frame_indices))}" for s in selections
        ],
    )
