"""Every unlabelled ultrasound frame of some folders, on a spec's B-mode model grid.

Images of an image folder (``labels.csv``: busi-dev, the ddti crops) are brought to the grid
as the evaluator brings an image (``training.datasets.load_grey``, then
``inference.transforms.to_model_input``); every frame of every DICOM file under a folder as
``run_model`` brings a B-mode frame (cropped to its tissue region by
``inference.runner.frame_box``, then ``inference.runner.frame_planes``). Labels are not read:
only the groups, so that a hold-out's groups are left out.

:func:`save_frames` writes the collected frames as one compact ``.npz`` (grey uint8 PNGs, as
``training.pack --png`` stores images) for a machine the folders do not travel to;
:func:`load_frames` reads it back on any grid.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pydicom
import torch
from pydicom.errors import InvalidDicomError
from pydicom.misc import is_dicom

from inference.frames import frame_count, read_frames
from inference.registry import ModelInput, ModelSpec, SelectionRule
from inference.runner import frame_box, frame_planes
from inference.transforms import to_grey_bytes, to_model_input
from kernel.errors import InvalidInput
from training.datasets import load_grey, read_image_folder
from training.exclusion import Exclusion, no_exclusion
from training.pack import encode_png, resize_images, stored_images
from training.trainer import model_inputs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceCount:
    """What one source gave: files read, frames kept, files left out (hold-out) or unreadable."""

    name: str
    kind: str
    files: int
    frames: int
    excluded: int = 0
    unreadable: int = 0


@dataclass(frozen=True)
class UnlabelledFrames:
    """Frames ``(N,C,S,S)`` normalised as the network's input, and the count of each source."""

    inputs: torch.Tensor
    counts: tuple[SourceCount, ...]

    def to_json(self) -> dict:
        """Per-source counts and the total, for ``ssl.json``."""
        return {
            "total": int(self.inputs.shape[0]),
            "sources": [asdict(count) for count in self.counts],
        }


def bmode_input(spec: ModelSpec) -> ModelInput:
    """The spec's grey B-mode input; ``ValueError`` when it has none."""
    for item in spec.inputs:
        if item.rule is SelectionRule.BMODE and item.contract.channels == 1:
            return item
    raise ValueError(f"{spec.key}: no grey B-mode input to pretrain on")


def image_folder_frames(
    folder: Path, size: int, exclusion: Exclusion, name: str
) -> tuple[list[torch.Tensor], SourceCount]:
    """Every image of ``folder``'s ``labels.csv`` whose group is not excluded, ``(1,1,S,S)`` each."""
    rows = read_image_folder(Path(folder))
    kept = [row for row in rows if row.group not in exclusion.groups]
    tensors = [to_model_input(load_grey(row.image), size) for row in kept]
    count = SourceCount(name, "images", len(rows), len(kept), excluded=len(rows) - len(kept))
    logger.info("%s: %d images, %d of hold-out groups left out", name, len(kept), count.excluded)
    return tensors, count


def _dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and is_dicom(p))


def dicom_frames(
    folder: Path, model_input: ModelInput, name: str
) -> tuple[list[torch.Tensor], SourceCount]:
    """Every frame of every DICOM file under ``folder`` (cine frames too), ``(1,C,S,S)`` each.

    A file whose pixel data does not decode is logged and counted as unreadable.
    """
    files = _dicom_files(folder)
    tensors: list[torch.Tensor] = []
    unreadable = 0
    for path in files:
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
            frames = read_frames(path, range(frame_count(header)), header)
        except (InvalidInput, InvalidDicomError, OSError) as error:
            logger.warning("%s: left out, %s", path.name, error)
            unreadable += 1
            continue
        box = frame_box(header, (int(frames[0].shape[0]), int(frames[0].shape[1])))
        tensors.extend(frame_planes(frame, box, model_input) for frame in frames)
    count = SourceCount(name, "dicom", len(files), len(tensors), unreadable=unreadable)
    logger.info("%s: %d frames of %d DICOM files", name, len(tensors), len(files))
    return tensors, count


def collect_frames(
    spec: ModelSpec,
    image_folders: Sequence[tuple[str, Path]],
    dicom_folders: Sequence[tuple[str, Path]],
    exclusion: Exclusion,
) -> UnlabelledFrames:
    """Every frame of the named image folders (hold-out groups left out) and DICOM folders on
    ``spec``'s B-mode grid; ``ValueError`` when there is none."""
    model_input = bmode_input(spec)
    tensors: list[torch.Tensor] = []
    counts: list[SourceCount] = []
    for name, folder in image_folders:
        found, count = image_folder_frames(folder, model_input.contract.size, exclusion, name)
        tensors += found
        counts.append(count)
    for name, folder in dicom_folders:
        found, count = dicom_frames(folder, model_input, name)
        tensors += found
        counts.append(count)
    if not tensors:
        raise ValueError("no frame to pretrain on: name an image folder or a DICOM folder")
    return UnlabelledFrames(torch.cat(tensors), tuple(counts))


def hold_out_record(exclusion: Exclusion) -> dict:
    """What ``ssl.json`` and a frames pack say of the hold-out left out of the frames."""
    return {"excluded_groups": len(exclusion.groups), "exclusion_files": list(exclusion.files),
            "exclusion_sha256": exclusion.digest}  # fmt: skip


#: the keys of :func:`hold_out_record`
HOLD_OUT_KEYS = tuple(hold_out_record(no_exclusion()))


def save_frames(frames: UnlabelledFrames, path: Path, extra: dict | None = None) -> Path:
    """Write grey frames ``(N,1,S,S)`` to ``path`` (.npz of lossless uint8 PNGs) with their
    per-source counts and ``extra`` (the exclusion's record); ``ValueError`` for frames of
    several planes."""
    if frames.inputs.shape[1] != 1:
        raise ValueError(f"frames of {frames.inputs.shape[1]} planes: only grey frames are packed")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**frames.to_json(), **(extra or {})}
    np.savez_compressed(path, **encode_png(to_grey_bytes(frames.inputs[:, 0])),
                        record=np.array(json.dumps(record)))  # fmt: skip
    logger.info("packed %d frames into %s", len(frames.inputs), path)
    return path


def load_frames(path: Path, size: int) -> tuple[UnlabelledFrames, dict]:
    """(frames on the ``size`` grid, the pack's record) of a file written by :func:`save_frames`."""
    with np.load(path, allow_pickle=False) as data:
        images, record = stored_images(data), json.loads(str(data["record"]))
    counts = tuple(SourceCount(**source) for source in record["sources"])
    return UnlabelledFrames(model_inputs(resize_images(images, size)), counts), record


def pack_frames(name: str, images: np.ndarray, excluded: int = 0) -> UnlabelledFrames:
    """A pack's grey uint8 images ``(N,S,S)`` as frames, ``excluded`` hold-out images already
    left out of it (``training.pack``): the same frames an image folder gives, packed."""
    count = SourceCount(name, "pack", len(images), len(images), excluded=excluded)
    return UnlabelledFrames(model_inputs(images), (count,))


def merge_frames(parts: Sequence[UnlabelledFrames]) -> UnlabelledFrames:
    """The frames of every part, in order, with every part's source counts."""
    inputs = torch.cat([part.inputs for part in parts])
    return UnlabelledFrames(inputs, tuple(count for part in parts for count in part.counts))
