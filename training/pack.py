"""Pack an image folder into one compact ``.npz`` on the model grid, for runs where data cannot travel.

Images are grey uint8 resized as ``to_model_input`` resizes; masks are bit-packed. ``png``
stores each image as a lossless PNG instead (about 30% smaller for ultrasound: what a
size-capped transfer needs); ``exclusion`` leaves a hold-out's groups out of the pack and
records them in it (``exclusion``), so the machine it travels to never holds them.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from kernel.errors import DatasetError
from training.datasets import Row, TrainingArrays, arrays_from_rows, read_image_folder
from training.exclusion import Exclusion, read_excluded_groups

logger = logging.getLogger(__name__)


def pack_image_folder(
    folder: Path, out_path: Path, size: int, exclusion: Exclusion | None = None, png: bool = False
) -> Path:
    """Write ``out_path`` (.npz) with every row of ``folder`` at ``size`` but the excluded
    groups'; returns the path. Conflicting-label rows are kept and flagged (``label_conflict``);
    consumers drop them."""
    rows = read_image_folder(folder)
    if exclusion is not None:
        kept = [row for row in rows if row.group not in exclusion.groups]
        exclusion = Exclusion(exclusion.files, exclusion.groups, len(rows) - len(kept))
        rows = kept
    return pack_rows(rows, Path(folder), out_path, size, exclusion, png)


def pack_rows(
    rows: list[Row],
    root: Path,
    out_path: Path,
    size: int,
    exclusion: Exclusion | None = None,
    png: bool = False,
) -> Path:
    """Write ``out_path`` (.npz) with ``rows`` (paths under ``root``) at ``size``; returns the path."""
    arrays = arrays_from_rows(rows, size, root=Path(root))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    images = encode_png(arrays.images) if png else {"images": arrays.images}
    extra = {} if exclusion is None else {"exclusion": np.array(json.dumps(exclusion.to_json()))}
    np.savez_compressed(
        out_path,
        **images,
        masks=np.packbits(arrays.masks.astype(bool), axis=-1),
        malignant=arrays.malignant,
        groups=arrays.groups,
        names=arrays.names,
        label_conflict=np.array([r.label_conflict for r in rows], bool),
        size=np.int32(size),
        **extra,
    )
    logger.info("packed %d images at %d into %s", len(rows), size, out_path)
    return out_path


def encode_png(images: np.ndarray) -> dict[str, np.ndarray]:
    """Grey uint8 images (N,H,W) as lossless PNGs: ``png`` (the files end to end) and
    ``png_ends`` (where each ends)."""
    blobs = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG", optimize=True)
        blobs.append(np.frombuffer(buffer.getvalue(), np.uint8))
    return {"png": np.concatenate(blobs), "png_ends": np.cumsum([len(b) for b in blobs])}


def decode_png(data: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The images (N,H,W) that :func:`encode_png` stored."""
    starts = np.concatenate([[0], ends[:-1]])
    spans = zip(starts, ends, strict=True)
    return np.stack([np.asarray(Image.open(io.BytesIO(data[a:b].tobytes()))) for a, b in spans])


def stored_images(data: np.lib.npyio.NpzFile) -> np.ndarray:
    """A pack's images, stored plain or as PNGs."""
    return data["images"] if "images" in data.files else decode_png(data["png"], data["png_ends"])


def pack_exclusion(path: Path) -> Exclusion | None:
    """The hold-out a pack was written without (None when it left nothing out)."""
    with np.load(path, allow_pickle=False) as data:
        if "exclusion" not in data.files:
            return None
        return Exclusion.from_json(json.loads(str(data["exclusion"])))


def load_packed(path: Path) -> tuple[TrainingArrays, np.ndarray]:
    """(arrays, label_conflict flags) of a file written by :func:`pack_image_folder`; raises
    :class:`DatasetError` when there is no such file."""
    if not Path(path).is_file():
        raise DatasetError(f"{path} not found: pack an image folder with `python -m training.pack`")
    with np.load(path, allow_pickle=False) as data:
        size = int(data["size"])
        masks = np.unpackbits(data["masks"], axis=-1, count=size).astype(np.uint8)
        arrays = TrainingArrays(
            images=stored_images(data),
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
    masks = torch.from_numpy(arrays.masks.astype(np.float32))[:, None]
    masks = F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=False)
    return TrainingArrays(
        images=resize_images(arrays.images, size),
        masks=(masks[:, 0] > 0.5).numpy().astype(np.uint8),
        malignant=arrays.malignant,
        groups=arrays.groups,
        names=arrays.names,
    )


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Grey uint8 images (N,S,S) resized to ``size`` (bilinear), as :func:`load_arrays` resizes."""
    if images.shape[-1] == size:
        return images
    tensor = torch.from_numpy(images.astype(np.float32))[:, None]
    tensor = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)
    return tensor[:, 0].round().clamp(0, 255).numpy().astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    """``python -m training.pack FOLDER OUT.npz --size 256 [--exclude-groups H.json] [--png]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--exclude-groups", type=Path, action="append", default=None,
                        help="a holdout.json whose groups stay out of the pack (repeatable)")  # fmt: skip
    parser.add_argument("--png", action="store_true", help="store images as lossless PNGs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    exclusion = read_excluded_groups(args.exclude_groups) if args.exclude_groups else None
    path = pack_image_folder(args.folder, args.out, args.size, exclusion, args.png)
    print(f"{path} {path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
