"""Read an input: a DICOM file (PS3.10), or a raw dataset as old archives keep them.

A raw dataset has no 128-byte preamble, no ``DICM`` prefix and no file meta: pydicom refuses it
unless forced, and forced it reads any bytes. So it is forced only when the file starts with an
element of group 0008 (where every instance starts without file meta) in either byte order, and
taken only when it then names its SOP class and instance; its transfer syntax is the encoding
it was read in (raw datasets are never compressed). Anything else is not DICOM
(:class:`~pydicom.errors.InvalidDicomError`).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

#: the first two bytes of a dataset starting with group 0008, little and big endian
_GROUP_0008 = (b"\x08\x00", b"\x00\x08")


def read_instance(path: Path) -> Dataset:
    """The dataset of ``path``, a DICOM file or a raw dataset, with file meta naming its
    transfer syntax; :class:`~pydicom.errors.InvalidDicomError` when it is neither."""
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        with open(path, "rb") as stream:
            if stream.read(2) not in _GROUP_0008:
                raise
    ds = pydicom.dcmread(path, force=True)
    if not (ds.get("SOPClassUID") and ds.get("SOPInstanceUID")):
        raise InvalidDicomError(f"{path.name}: no preamble and no SOP class or instance")
    implicit, little = ds.original_encoding
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    if implicit:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    ds.file_meta = meta
    return ds
