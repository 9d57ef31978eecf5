"""Fixtures for the web unit tests: our own outputs (SEG, SR, heatmap) of phantom sources, on disk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset

from inference.encode.outputs import build_outputs
from inference.measure import measure_axes
from inference.prediction import Call
from inference.registry import ModelSpec
from tests.support.predictions import model_spec, phantom_source, prediction_for


@dataclass(frozen=True)
class WrittenOutputs:
    source: Dataset
    source_path: Path
    mask: np.ndarray
    files: dict[str, Path]
    probability: float
    long_axis_mm: float | None
    short_axis_mm: float | None


@pytest.fixture
def written_outputs(tmp_path: Path) -> Callable[..., WrittenOutputs]:
    """Build a job's outputs for a phantom source with its true mask and write them to files."""

    def build(frames: int = 1, frame_index: int = 0, probability: float = 0.8,
              call: Call = Call.PRESENT, notes: list[str] | None = None,
              spec: ModelSpec | None = None) -> WrittenOutputs:
        source, mask = phantom_source(seed=3, frames=frames)
        folder = tmp_path / f"job-{frames}-{frame_index}"
        folder.mkdir()
        source_path = folder / "source.dcm"
        source.save_as(source_path, enforce_file_format=True)
        measurements, _ = measure_axes(mask, source)
        prediction = prediction_for(source, mask, probability=probability, call=call,
                                    frame_index=frame_index, notes=notes, source_path=source_path)
        files = {}
        for role, dataset in build_outputs(prediction, source, job_id=42, spec=spec or model_spec()).items():
            files[role] = folder / f"{role}.dcm"
            dataset.save_as(files[role], enforce_file_format=True)
        return WrittenOutputs(
            source, source_path, np.asarray(mask).astype(bool), files, probability,
            measurements.long_axis_mm if measurements else None,
            measurements.short_axis_mm if measurements else None,
        )

    return build
