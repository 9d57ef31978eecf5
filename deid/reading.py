"""Read an input: a DICOM file (PS3.10), or a raw dataset as old archives keep them.

A raw dataset has no 128-byte preamble and no ``DICM`` prefix, and often no file meta: pydicom
refuses it unless forced, and forced it reads any bytes. So it is forced only when the file
starts with an element of group 0002 (file meta) or 0008 (where an instance without file meta
starts), in either byte order, and taken only when it then names its SOP class and instance.
Without file meta its transfer syntax is the encoding it was read in (a dataset without file
meta cannot be compressed). Anything else is not DICOM (:class:`~pydicom.errors.InvalidDicomError`).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

#: the first two bytes of a dataset starting with group 0002 or 0008, little and big endian
_FIRST_GROUPS = (b"\x02\x00", b"\x08\x00", b"\x00\x08")


def read_instance(path: Path) -> Dataset:
    """The dataset of ``path``, a DICOM file or a raw dataset, with file meta naming its
    transfer syntax; :class:`~pydicom.errors.InvalidDicomError` when it is neither."""
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        with open(path, "rb") as stream:
            if stream.read(2) not in _FIRST_GROUPS:
                raise
    ds = pydicom.dcmread(path, force=True)
    if not (ds.get("SOPClassUID") and ds.get("SOPInstanceUID")):
        raise InvalidDicomError(f"{path.name}: no preamble and no SOP class or instance")
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        meta.TransferSyntaxUID = _syntax(implicit=bool(implicit), little=bool(little))
    ds.file_meta = meta
    return ds


def _syntax(*, implicit: bool, little: bool) -> UID:
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian
