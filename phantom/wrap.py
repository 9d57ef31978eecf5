"""Wrap an image file (PNG, e.g. a busi-dev image) as a one-instance ultrasound DICOM study.

For tests, parity checks and demos: the node then sees the same grey pixels ``lnm-node evaluate``
reads from the file. The study is labelled with a body part (``label_body_part``); it carries no
ultrasound regions, so the node uses the whole frame, as ``evaluate`` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kernel.uids import derive_uid
from phantom.header import InstanceIdentity, label_body_part, us_dataset


def wrap_image(
    image: Path, out_dir: Path, body_part: str, key: str, description: str | None = None
) -> Path:
    """Write ``image`` (grey, [0, 1] as ``training.datasets.load_grey`` reads it, stored 8-bit)
    as ``out_dir/<key>.dcm``; UIDs derive from ``key``. ``description`` replaces the
    StudyDescription the body part gives. Returns the file's path."""
    from training.datasets import load_grey

    grey = np.clip(np.rint(load_grey(image) * 255.0), 0, 255).astype(np.uint8)
    identity = InstanceIdentity(
        patient_id="WRAPPED",
        accession_number="WRAPPED",
        study_instance_uid=str(derive_uid("wrapped-study", key)),
        series_instance_uid=str(derive_uid("wrapped-series", key)),
        sop_instance_uid=str(derive_uid("wrapped-instance", key)),
        series_number=1,
        series_description=f"WRAPPED {image.name}"[:64],
    )
    ds = us_dataset(grey, identity, [], multi_frame=False)
    label_body_part(ds, body_part)
    if description is not None:
        ds.StudyDescription = description
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{key}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path
