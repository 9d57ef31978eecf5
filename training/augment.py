"""MONAI training augmentations for (image, mask) pairs already on the model grid.

The image arrives normalised by ``inference.transforms.to_model_input``; spatial changes are
applied to image and mask together, intensity changes to the image only.
"""

from __future__ import annotations

import math

from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

KEYS = ("image", "mask")


def training_augmentation(size: int, seed: int) -> Compose:
    """Seeded flip, small affine and intensity jitter for ``{"image", "mask"}`` dicts (1,S,S)."""
    shift = 0.06 * size
    transform = Compose(
        [
            RandFlipd(keys=KEYS, prob=0.5, spatial_axis=1),
            RandAffined(
                keys=KEYS,
                prob=0.7,
                rotate_range=(math.radians(12),),
                scale_range=(0.12, 0.12),
                translate_range=(shift, shift),
                shear_range=(0.05, 0.05),
                mode=("bilinear", "nearest"),
                padding_mode="border",
            ),
            RandScaleIntensityd(keys="image", factors=0.15, prob=0.5),
            RandShiftIntensityd(keys="image", offsets=0.3, prob=0.5),
            RandAdjustContrastd(keys="image", gamma=(0.8, 1.25), prob=0.3),
            RandGaussianNoised(keys="image", std=0.05, prob=0.2),
        ]
    )
    transform.set_random_state(seed=seed)
    return transform
