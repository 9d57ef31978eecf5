"""What one model run on one study produced: the hand-off from the infer to the encode stage."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np


class Call(StrEnum):
    """The model's call on the node, as the SR reports it."""

    PRESENT = "present"
    ABSENT = "absent"
    UNDETERMINED = "undetermined"


@dataclass(frozen=True)
class AxisMeasurements:
    """Long and short axis of the segmented node in mm, with the pixel endpoints of each axis.

    Endpoints are (column, row) floats on the source frame's pixel grid.
    """

    long_axis_mm: float
    short_axis_mm: float
    long_axis_endpoints: tuple[tuple[float, float], tuple[float, float]]
    short_axis_endpoints: tuple[tuple[float, float], tuple[float, float]]

    @property
    def short_to_long_ratio(self) -> float:
        return self.short_axis_mm / self.long_axis_mm if self.long_axis_mm > 0 else 0.0


@dataclass
class Prediction:
    """One model's result on one source image frame.

    ``mask`` and ``heatmap`` are on the source frame's full pixel grid (Rows x Columns).
    """

    model_key: str
    model_version: str
    model_name: str
    source_path: Path
    source_sop_instance_uid: str
    frame_index: int
    probability: float
    threshold: float
    call: Call
    mask: np.ndarray | None
    heatmap: np.ndarray
    measurements: AxisMeasurements | None = None
    notes: list[str] = field(default_factory=list)
    #: what went into the network, one ``SOPInstanceUID#frame,frame`` per spec input, in order:
    #: equal lists of one model version mean equal results
    inputs: list[str] = field(default_factory=list)

    def save(self, folder: Path) -> Path:
        """Write ``prediction.json`` and ``prediction.npz`` into ``folder``; returns the JSON path."""
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"heatmap": self.heatmap.astype(np.float32)}
        if self.mask is not None:
            arrays["mask"] = self.mask.astype(np.uint8)
        np.savez_compressed(folder / "prediction.npz", **arrays)
        meta = {
            k: v for k, v in asdict(self).items() if k not in {"mask", "heatmap", "measurements"}
        }
        meta["source_path"] = str(self.source_path)
        meta["call"] = self.call.value
        meta["measurements"] = asdict(self.measurements) if self.measurements else None
        path = folder / "prediction.json"
        path.write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, folder: Path) -> Prediction:
        meta = json.loads((folder / "prediction.json").read_text())
        arrays = np.load(folder / "prediction.npz")
        measurements = meta.pop("measurements")
        if measurements:
            measurements = AxisMeasurements(
                long_axis_mm=measurements["long_axis_mm"],
                short_axis_mm=measurements["short_axis_mm"],
                long_axis_endpoints=tuple(map(tuple, measurements["long_axis_endpoints"])),  # type: ignore[arg-type]
                short_axis_endpoints=tuple(map(tuple, measurements["short_axis_endpoints"])),  # type: ignore[arg-type]
            )
        return cls(
            **{**meta, "source_path": Path(meta["source_path"]), "call": Call(meta["call"])},
            mask=arrays["mask"].astype(bool) if "mask" in arrays else None,
            heatmap=arrays["heatmap"],
            measurements=measurements,
        )
