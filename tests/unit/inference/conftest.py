"""Fixtures for the inference tests: a tiny registered model with seeded random weights."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from inference.registry import ModelSpec
from tests.support.models import package_model, spec_fields
from tests.support.paths import SHARED_DATA


@pytest.fixture(scope="session")
def make_spec_fields() -> Callable[..., dict[str, Any]]:
    """``spec_fields``: every field of a valid 64x64 ``ynet`` spec, with overrides."""
    return spec_fields


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding tiny-ynet 0.1.0 and 0.2.0 (read only: copy it to modify)."""
    root = tmp_path_factory.mktemp("models")
    package_model(root / "tiny-ynet", seed=0)
    package_model(root / "tiny-ynet-0.2.0", seed=1, version="0.2.0")
    return root


@pytest.fixture(scope="session")
def tiny_spec(models_dir: Path) -> ModelSpec:
    """The registered tiny-ynet 0.1.0 spec."""
    return ModelSpec.load(models_dir / "tiny-ynet")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``<repo>/../shared/data``, or skip when this machine has no shared data."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (tests using real files need it)")
    return SHARED_DATA
