"""The group of a DICOM case: whose cases must stay in one fold, without naming the patient.

A DICOM file's group is a keyed pseudonym of its patient: the HMAC-SHA256, under the site's
group key (:class:`GroupKey`, a secret kept in the node's home), of the patient key the node
records at receive (:func:`kernel.patient.patient_key`, issuer-aware); a file without a
PatientID is grouped by its study UID. Groups go into manifests, run folders and the
``holdout.json`` packaged beside a model, which may leave the site: the patient key alone is a
plain sha256 of the ID, which anyone can recompute for every ID of a hospital's number range,
so it is never written there.

Manifests, ``holdout.json`` and run folders written before 2026-12-08 named the PatientID in
clear; :meth:`GroupKey.legacy` lets such a group still find its cases.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from deid.sensitive import load_or_create_key
from kernel.patient import patient_key

#: where a node's home keeps its group key (created 0600 on first use)
GROUP_KEY_FILE = Path("keys") / "dataset-groups.key"


@dataclass(frozen=True)
class GroupKey:
    """The site's secret that turns patient keys into dataset groups. Keep it with the node's
    home: a dataset built under another key groups the same patients under other names."""

    secret: bytes

    @classmethod
    def of_home(cls, home: Path) -> GroupKey:
        """The key of the node home ``home``, created (random, mode 0600) when absent."""
        path = home / GROUP_KEY_FILE
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key, _ = load_or_create_key(path)
        return cls(key.encode())

    def pseudonym(self, key: str) -> str:
        """The group of the patient whose patient key is ``key``."""
        return hmac.new(self.secret, key.encode(), hashlib.sha256).hexdigest()

    def group(self, header: Dataset) -> str:
        """The group of the DICOM file whose header is ``header``: its patient's pseudonym,
        else (no PatientID) its StudyInstanceUID."""
        if str(header.get("PatientID", "") or "").strip():
            return self.pseudonym(patient_key(header))
        return str(header.StudyInstanceUID)

    def legacy(self, group: str) -> str:
        """The group an older file's ``group`` stands for today, read as a PatientID in clear
        without an IssuerOfPatientID (a patient whose files carry an issuer has another)."""
        header = Dataset()
        header.PatientID = group
        return self.pseudonym(patient_key(header))


def resolve_groups(
    named: Iterable[str],
    present: Iterable[str],
    legacy: Callable[[str], str] | None = None,
) -> dict[str, str | None]:
    """Each ``named`` group -> the group of ``present`` it stands for (itself, else its
    ``legacy`` form, :meth:`GroupKey.legacy`), or None when it stands for none."""
    present = set(present)
    resolved: dict[str, str | None] = {}
    for group in named:
        if group in present:
            resolved[group] = group
        else:
            form = legacy(group) if legacy is not None else None
            resolved[group] = form if form in present else None
    return resolved
