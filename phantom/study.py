"""A whole synthetic lymph-node study: B-mode, colour Doppler, cine and CEUS of one node.

Every series shows the same node (the same seed draws it); each instance is labelled synthetic
(PatientName ``SYNTHETIC^PHANTOM``, ImageComments). UIDs derive from the seed, so a study is
the same bytes every time.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset

from kernel.uids import derive_uid
from phantom.ceus import CEUS_SERIES_DESCRIPTION, make_ceus_dataset
from phantom.cine import make_cine_dataset
from phantom.doppler import make_doppler_dataset
from phantom.header import InstanceIdentity, calibrated_region, label_body_part, us_dataset
from phantom.node import PhantomNode, make_node, render_bmode

ROLES = ("bmode", "doppler", "cine", "ceus")
SERIES_DESCRIPTIONS = {
    "bmode": "SYNTHETIC B-MODE",
    "doppler": "SYNTHETIC COLOUR DOPPLER",
    "cine": "SYNTHETIC B-MODE CINE",
    "ceus": CEUS_SERIES_DESCRIPTION,
}


@dataclass(frozen=True)
class StudyTruth:
    """Ground truth of a phantom study: the node, its measurements, and what each file is."""

    study_instance_uid: str
    malignant: bool
    ambiguous: bool
    node: PhantomNode
    long_axis_mm: float
    short_axis_mm: float
    short_to_long_ratio: float
    sop_instance_uids: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The truth as JSON (for ``truth.json`` beside a demo study)."""
        return json.dumps(asdict(self), indent=2)


def _identity(seed: int, role: str) -> InstanceIdentity:
    return InstanceIdentity(
        patient_id=f"SYN{seed:06d}",
        accession_number=f"PH{seed:06d}",
        study_instance_uid=str(derive_uid("phantom-study", seed)),
        series_instance_uid=str(derive_uid("phantom-series", seed, role)),
        sop_instance_uid=str(derive_uid("phantom-instance", seed, role)),
        series_number=ROLES.index(role) + 1,
        series_description=SERIES_DESCRIPTIONS[role],
    )


def _bmode_dataset(node: PhantomNode, rows: int, cols: int, seed: int) -> Dataset:
    image = render_bmode(node, rows, cols, seed)
    regions = [calibrated_region((0, 0, cols - 1, rows - 1), node.mm_per_pixel)]
    return us_dataset(image, _identity(seed, "bmode"), regions, multi_frame=False)


def phantom_datasets(
    seed: int,
    malignant: bool,
    *,
    with_doppler: bool = True,
    with_cine: bool = True,
    with_ceus: bool = True,
    rows: int = 256,
    cols: int = 320,
    mm_per_pixel: float = 0.1,
    cine_frames: int = 24,
    ceus_frames: int = 20,
    ambiguous: bool = False,
) -> tuple[dict[str, Dataset], PhantomNode]:
    """The study's datasets by role (``bmode`` always), and the node they show.

    ``ambiguous``: the node's B-mode does not tell its pathology; Doppler, cine and CEUS do
    (:mod:`phantom.node`).
    """
    node = make_node(rows, cols, seed, malignant, mm_per_pixel, ambiguous=ambiguous)
    datasets = {"bmode": _bmode_dataset(node, rows, cols, seed)}
    if with_doppler:
        datasets["doppler"] = make_doppler_dataset(
            node, rows, cols, seed, _identity(seed, "doppler")
        )[0]
    if with_cine:
        datasets["cine"] = make_cine_dataset(
            node, rows, cols, seed, _identity(seed, "cine"), frames=cine_frames
        )[0]
    if with_ceus:
        datasets["ceus"] = make_ceus_dataset(
            node, rows, cols, seed, _identity(seed, "ceus"), frames=ceus_frames
        )[0]
    return datasets, node


def write_phantom_study(
    folder: Path,
    seed: int,
    malignant: bool,
    with_doppler: bool = True,
    with_cine: bool = True,
    with_ceus: bool = True,
    body_part: str | None = None,
    **options: float,
) -> tuple[list[Path], StudyTruth]:
    """Write one phantom study into ``folder`` (``<role>.dcm``); returns (paths, truth).

    ``options`` go to :func:`phantom_datasets` (``rows``, ``cols``, ``mm_per_pixel``,
    ``cine_frames``, ``ceus_frames``, ``ambiguous``). ``body_part`` labels every instance with that
    BodyPartExamined and description (``phantom.header.label_body_part``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    datasets, node = phantom_datasets(
        seed,
        malignant,
        with_doppler=with_doppler,
        with_cine=with_cine,
        with_ceus=with_ceus,
        **options,  # type: ignore[arg-type]
    )
    paths: list[Path] = []
    files: dict[str, str] = {}
    for role, dataset in datasets.items():
        if body_part is not None:
            label_body_part(dataset, body_part)
        path = folder / f"{role}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
        files[role] = path.name
    truth = StudyTruth(
        study_instance_uid=str(datasets["bmode"].StudyInstanceUID),
        malignant=malignant,
        ambiguous=node.ambiguous,
        node=node,
        long_axis_mm=node.long_axis_mm,
        short_axis_mm=node.short_axis_mm,
        short_to_long_ratio=node.short_to_long_ratio,
        sop_instance_uids={role: str(ds.SOPInstanceUID) for role, ds in datasets.items()},
        files=files,
    )
    return paths, truth
