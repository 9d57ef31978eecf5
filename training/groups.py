"""The group of a DICOM case: whose cases must stay in one fold, without naming the patient.

A DICOM file's group is its patient's key, :func:`kernel.patient.patient_key` (the key the
node records at receive: the sha256 of IssuerOfPatientID and PatientID), else, for a file
without a PatientID, its study UID. Manifests, ``holdout.json`` and run folders written before
named the PatientID in clear; :func:`legacy_key` lets such a group still find its cases.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.dataset import Dataset

from kernel.patient import patient_key


def dicom_group(header: Dataset) -> str:
    """The group of the DICOM file whose header is ``header``: its patient key, else (no
    PatientID) its StudyInstanceUID."""
    if str(header.get("PatientID", "") or "").strip():
        return patient_key(header)
    return str(header.StudyInstanceUID)


def legacy_key(group: str) -> str:
    """The key a group written in clear would have today, read as a PatientID without an
    IssuerOfPatientID (a patient whose files carry an issuer has another key)."""
    header = Dataset()
    header.PatientID = group
    return patient_key(header)


def resolve_groups(named: Iterable[str], present: Iterable[str]) -> dict[str, str | None]:
    """Each ``named`` group -> the group of ``present`` it stands for (itself, else its
    :func:`legacy_key`), or None when it stands for none."""
    present = set(present)
    resolved: dict[str, str | None] = {}
    for group in named:
        if group in present:
            resolved[group] = group
        else:
            key = legacy_key(group)
            resolved[group] = key if key in present else None
    return resolved
