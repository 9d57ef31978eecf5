"""Fixtures shared by the encoder and validator tests: phantom sources and the predictions made
on them. A conftest imports them by name."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from pydicom.dataset import Dataset

from inference.prediction import Prediction
from inference.registry import ModelSpec
from tests.support.predictions import model_spec, phantom_source, prediction_for, roundtrip


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


@pytest.fixture
def spec() -> ModelSpec:
    """The spec of the model the predictions name (tiny-ynet@0.1.0, a lymph-node finding)."""
    return model_spec()
