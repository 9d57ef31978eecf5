"""What a dataset build leaves out: studies without a label and labels without a usable study.

A site must see what its dataset does not hold, not only what it holds. :class:`LeftOut` lists
by UID (never a patient's identity) the studies that no label names, the labels that name no
study or file, the labels of unknown outcome and, at study level, the labels whose every file
belongs to a more specific label; ``manifest.json`` carries it under ``left_out`` and the CLI
prints :meth:`LeftOut.summary`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.dataset import Dataset
from sqlalchemy.orm import Session

from db.labels import LabelRecord
from db.models import PathologyOutcome

#: (level, uid) of one label
LabelRef = tuple[str, str]


def _refs(refs: Iterable[LabelRef]) -> tuple[LabelRef, ...]:
    return tuple(sorted(set(refs)))


@dataclass(frozen=True)
class LeftOut:
    """UIDs a dataset build did not use, by reason (each sorted, no repeats)."""

    studies_without_label: tuple[str, ...] = ()
    labels_without_study: tuple[LabelRef, ...] = ()
    labels_outcome_unknown: tuple[LabelRef, ...] = ()
    labels_overridden: tuple[LabelRef, ...] = ()

    def __or__(self, other: LeftOut) -> LeftOut:
        """Both lists of each reason, merged."""
        return LeftOut(
            tuple(sorted({*self.studies_without_label, *other.studies_without_label})),
            _refs([*self.labels_without_study, *other.labels_without_study]),
            _refs([*self.labels_outcome_unknown, *other.labels_outcome_unknown]),
            _refs([*self.labels_overridden, *other.labels_overridden]),
        )

    def to_json(self) -> dict:
        """The manifest's ``left_out``: per reason, a count and the UIDs."""
        labels = {
            "labels_without_study": self.labels_without_study,
            "labels_outcome_unknown": self.labels_outcome_unknown,
            "labels_overridden": self.labels_overridden,
        }
        return {
            "studies_without_label": {
                "n": len(self.studies_without_label),
                "uids": list(self.studies_without_label),
            },
            **{
                name: {"n": len(refs), "labels": [{"level": lv, "uid": uid} for lv, uid in refs]}
                for name, refs in labels.items()
            },
        }

    def summary(self) -> str:
        """One line for the CLI: the counts that are not zero, or that nothing was left out."""
        parts = [
            (len(self.studies_without_label), "study without a label", "studies without a label"),
            (len(self.labels_without_study), "label matching no study", "labels matching no study"),
            (len(self.labels_outcome_unknown), "label of unknown outcome",
             "labels of unknown outcome"),
            (len(self.labels_overridden), "label whose files all have a more specific label",
             "labels whose files all have a more specific label"),
        ]  # fmt: skip
        said = [f"{n} {one if n == 1 else many}" for n, one, many in parts if n]
        return "left out: " + (", ".join(said) + " (manifest.json left_out)" if said else "nothing")


def folder_left_out(headers: Iterable[Dataset], records: Iterable[LabelRecord]) -> LeftOut:
    """What the labels ``records`` leave out of the DICOM files whose headers are ``headers``:
    studies none of whose files a label names (at any level), labels of known outcome that name
    no file, and labels of unknown outcome."""
    named: set[tuple[str, str]] = set()
    study_of: dict[tuple[str, str], str] = {}
    studies: set[str] = set()
    for header in headers:
        study = str(header.get("StudyInstanceUID", "") or "")
        studies.add(study)
        for level, keyword in (("study", "StudyInstanceUID"), ("series", "SeriesInstanceUID"),
                               ("instance", "SOPInstanceUID")):  # fmt: skip
            uid = str(header.get(keyword, "") or "")
            if uid:
                named.add((level, uid))
                study_of[(level, uid)] = study
    records = list(records)
    labelled = {
        study_of[(r.level.value, r.uid)] for r in records if (r.level.value, r.uid) in named
    }
    unknown = [(r.level.value, r.uid) for r in records if r.outcome is PathologyOutcome.UNKNOWN]
    return LeftOut(
        tuple(sorted(studies - labelled - {""})),
        _refs((r.level.value, r.uid) for r in records
              if (r.level.value, r.uid) not in named and r.outcome is not PathologyOutcome.UNKNOWN),
        _refs(unknown),
    )  # fmt: skip


def node_left_out(session: Session) -> LeftOut:
    """What the node's labels leave out of its received studies: studies without any label,
    labels that match no received study, labels of unknown outcome (each label once, as
    :func:`folder_left_out` counts it)."""
    from db.labels import label_rows, unlabelled_study_uids

    rows = label_rows(session)
    return LeftOut(
        tuple(sorted(unlabelled_study_uids(session))),
        _refs(
            (r.level.value, r.uid)
            for r in rows
            if r.study_id is None and r.outcome is not PathologyOutcome.UNKNOWN
        ),
        _refs((r.level.value, r.uid) for r in rows if r.outcome is PathologyOutcome.UNKNOWN),
    )
