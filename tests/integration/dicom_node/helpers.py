"""Helpers for the DICOM network edge tests: the running node, DCMTK storescu, test files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy.orm import Session, sessionmaker

from kernel.settings import Destination, Settings
from kernel.spool import Spool
from phantom.us_dicom import SECONDARY_CAPTURE_STORAGE

#: name -> make_us_dataset arguments: every transfer syntax the phantom writes
PHANTOM_VARIANTS: dict[str, dict[str, Any]] = {
    "explicit_le": {"transfer_syntax": ExplicitVRLittleEndian},
    "implicit_le": {"transfer_syntax": ImplicitVRLittleEndian},
    "rle": {"transfer_syntax": RLELossless},
    "jpeg_baseline_grey": {"transfer_syntax": JPEGBaseline8Bit},
    "jpeg_baseline_colour": {"transfer_syntax": JPEGBaseline8Bit, "rgb": True},
    "jpeg_ls": {"transfer_syntax": JPEGLSLossless},
    "jpeg_2000": {"transfer_syntax": JPEG2000Lossless},
    "cine_explicit_le": {"transfer_syntax": ExplicitVRLittleEndian, "frames": 4},
    "cine_jpeg_baseline": {"transfer_syntax": JPEGBaseline8Bit, "frames": 3, "rgb": True},
    "secondary_capture": {"sop_class_uid": SECONDARY_CAPTURE_STORAGE},
}

CALLING_AE = "MODALITY"


@dataclass
class Node:
    """A running SCP with its settings, spool and database."""

    settings: Settings
    spool: Spool
    sessions: sessionmaker[Session]
    server: ThreadedAssociationServer

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def destination(self) -> Destination:
        return Destination(ae_title=self.settings.ae_title, host="127.0.0.1", port=self.port)


