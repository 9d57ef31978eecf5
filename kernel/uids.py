"""Deterministic UIDs for outputs, so a retried job resends the same instances."""

from __future__ import annotations

from pydicom.uid import PYDICOM_ROOT_UID, UID, generate_uid


def derive_uid(*parts: object, prefix: str = PYDICOM_ROOT_UID) -> UID:
    """A UID that depends only on ``parts`` (e.g. job id and output role)."""
    return generate_uid(prefix=prefix, entropy_srcs=[str(p) for p in parts])
