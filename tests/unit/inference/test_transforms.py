from __future__ import annotations

import numpy as np
import torch

from inference.transforms import to_model_input, to_model_planes


def test_to_model_planes_equal_each_plane_through_to_model_input() -> None:
    rng = np.random.default_rng(0)
    planes = rng.uniform(0.0, 1.0, size=(5, 37, 53)).astype(np.float32)

    batched = to_model_planes(planes, 16)

    assert batched.shape == (1, 5, 16, 16)
    single = torch.cat([to_model_input(plane, 16) for plane in planes], dim=1)
    torch.testing.assert_close(batched, single, rtol=0.0, atol=1e-6)
