"""Fixtures for the encoder tests: phantom sources and the predictions made on them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from pydicom.dataset import Dataset

from inference.prediction import Prediction
from tests.support.predictions import phantom_source, prediction_for, roundtrip


@pytest.fixture
def phantom() -> Callable[..., tuple[Dataset, np.ndarray]]:
    """Build a phantom source (read back from bytes, as the node receives it) and its mask."""
    return phantom_source


@pytest.fixture(name="roundtrip")
def roundtrip_fixture() -> Callable[[Dataset], Dataset]:
    """Write a dataset to bytes and read it back with pydicom."""
    return roundtrip


@pytest.fixture
def make_prediction() -> Callable[..., Prediction]:
    """Build a Prediction on a source (see ``tests.support.predictions.prediction_for``)."""
    return prediction_for

