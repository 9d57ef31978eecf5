"""Reading a DICOM SR's content tree in tests."""

from __future__ import annotations

from pydicom.dataset import Dataset


def content_items(dataset: Dataset) -> list[Dataset]:
    """Every content item of an SR tree below ``dataset``, depth first."""
    found = []
    for item in dataset.get("ContentSequence", []):
        found.append(item)
        found.extend(content_items(item))
    return found


def numeric_value(sr: Dataset, code_value: str) -> float | None:
    """The value of the first NUM item whose concept name has ``code_value``, or ``None``."""
    for item in content_items(sr):
        if item.ValueType == "NUM" and item.ConceptNameCodeSequence[0].CodeValue == code_value:
            return float(item.MeasuredValueSequence[0].NumericValue)
    return None


def inferred_from(sr: Dataset, code_value: str) -> list[Dataset]:
    """The SCOORD items the first NUM item whose concept name has ``code_value`` is INFERRED
    FROM (empty when there is no such NUM or it has none)."""
    for item in content_items(sr):
        if item.ValueType == "NUM" and item.ConceptNameCodeSequence[0].CodeValue == code_value:
            return [
                child
                for child in item.get("ContentSequence", [])
                if child.ValueType == "SCOORD" and child.RelationshipType == "INFERRED FROM"
            ]
    return []
