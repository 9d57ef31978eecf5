"""Image <-> model tensor conversions shared by training and inference (one definition, no drift)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

#: the network input's normalisation of grey in [0, 1]: ``(grey - INPUT_MEAN) / INPUT_STD``
INPUT_MEAN, INPUT_STD = 0.5, 0.25


def to_grey_unit(image: np.ndarray) -> np.ndarray:
    """Any decoded frame (H,W) or (H,W,3|4), integer or float, to float32 grey in [0, 1].

    Colour is reduced with ITU-R BT.601 luma weights; integers are scaled by their dtype's
    maximum value, floats are min-max normalised.
    """
    array = np.asarray(image)
    if array.ndim == 3:
        array = array[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        scale = 255.0 if np.issubdtype(image.dtype, np.integer) and image.dtype.itemsize == 1 else None
    else:
        scale = None
    if np.issubdtype(np.asarray(image).dtype, np.integer):
        maximum = float(np.iinfo(np.asarray(image).dtype).max) if scale is None else scale
        return (array.astype(np.float32) / maximum).clip(0.0, 1.0)
    array = array.astype(np.float32)
    low, high = float(array.min()), float(array.max())
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def to_model_input(grey: np.ndarray, size: int) -> torch.Tensor:
    """Grey [0,1] (H,W) to a normalised tensor (1,1,size,size) for the network."""
    return to_model_planes(np.asarray(grey)[None], size)


def to_model_planes(planes: np.ndarray, size: int) -> torch.Tensor:
    """Grey [0,1] planes (N,H,W) to normalised tensors (1,N,size,size), as ``to_model_input``
    brings each plane, in one resampling call."""
    tensor = torch.from_numpy(np.ascontiguousarray(planes, dtype=np.float32))[None]
    tensor = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)
    return (tensor - INPUT_MEAN) / INPUT_STD


def to_grey_bytes(inputs: torch.Tensor) -> np.ndarray:
    """Normalised single-plane inputs (N,S,S) back to grey uint8, the inverse of the scaling
    of ``to_model_planes`` (to 1/255): frames stored compactly, as a pack stores images."""
    grey = inputs.detach().float().cpu() * INPUT_STD + INPUT_MEAN
    return (grey * 255.0).round().clamp(0, 255).numpy().astype(np.uint8)


def to_source_grid(map_: torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """A model-grid map (1,1,S,S) or (S,S) back to the source (H,W) grid, float32."""
    tensor = map_.detach().float().cpu()
    while tensor.ndim < 4:
        tensor = tensor[None]
    resized = F.interpolate(tensor, size=shape, mode="bilinear", align_corners=False)
    return resized[0, 0].numpy()
