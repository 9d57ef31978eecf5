"""Pack an image folder into one compact ``.npz`` on the model grid, for runs where data cannot travel.

Images are grey uint8 resized as ``to_model_input`` resizes; masks are bit-packed.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from training.datasets import Row, TrainingArrays, arrays_from_rows, read_image_folder

logger = logging.getLogger(__name__)


def pack_image_folder(folder: Path, out_path: Path, size: int) -> Path:
    """Write ``out_path`` (.npz) with every row of ``folder`` at ``size``; returns the path.

    Conflicting-label rows are kept and flagged (``label_conflict``); consumers drop them.
    """
    return pack_rows(read_image_folder(folder), Path(folder), out_path, size)


def pack_rows(rows: list[Row], root: Path, out_path: Path, size: int) -> Path:
    """Write ``out_path`` (.npz) with ``rows`` (paths under ``root``) at ``size``; returns the path."""
    arrays = arrays_from_rows(rows, size, root=Path(root))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out_path,
        images=arrays.images,
        masks=np.packbits(arrays.masks.astype(bool), axis=-1),
        malignant=arrays.malignant,
        groups=arrays.groups,
        names=arrays.names,
        label_conflict=np.array([r.label_conflict for r in rows], bool),
        size=np.int32(size),
    )
    logger.info("packed %d images at %d into %s", len(rows), size, out_path)
    return out_path


def load_packed(path: Path) -> tuple[TrainingArrays, np.ndarray]:
    """(arrays, label_conflict flags) of a file written by :func:`pack_image_folder`."""
    with np.load(path, allow_pickle=False) as data:
        size = int(data["size"])
        masks = np.unpackbits(data["masks"], axis=-1, count=size).astype(np.uint8)
        arrays = TrainingArrays(
            images=data["images"],
            masks=masks,
            malignant=data["malignant"],
            groups=data["groups"],
            names=data["names"],
        )
        return arrays, data["label_conflict"].astype(bool)


def load_arrays(path: Path, size: int, limit: int | None = None) -> TrainingArrays:
    """A pack without conflicting groups, resized to ``size`` (bilinear) when packed otherwise;
    ``limit`` keeps that many cases spread evenly over the pack (dry runs keep both classes)."""
    arrays, conflict = load_packed(path)
    arrays = arrays.subset(np.flatnonzero(~conflict))
    if limit and limit < len(arrays.images):
        arrays = arrays.subset(np.linspace(0, len(arrays.images) - 1, limit).round().astype(int))
    if arrays.size == size:
        return arrays
    images = torch.from_numpy(arrays.images.astype(np.float32))[:, None]
    masks = torch.from_numpy(arrays.masks.astype(np.float32))[:, None]
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    masks = F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=False)
    return TrainingArrays(
        images=images[:, 0].round().clamp(0, 255).numpy().astype(np.uint8),
        masks=(masks[:, 0] > 0.5).numpy().astype(np.uint8),
        malignant=arrays.malignant,
        groups=arrays.groups,
        names=arrays.names,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m training.pack FOLDER OUT.npz --size 256``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    path = pack_image_folder(args.folder, args.out, args.size)
    print(f"{path} {path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
