"""Payloads the de-identification cannot clean: an object holding one is withheld, not written.

The profile cleans attributes, SR content items (PS3.15 E.3.3) and the pixels outside the
ultrasound tissue regions (E.3.1). Some objects carry their content as bytes it cannot read: an
encapsulated document (PS3.3 C.24.2: PDF, CDA, STL, OBJ, MTL), waveform samples (C.10.9: a voice
note, an ECG), float pixel data and spectroscopy data. A name printed in a PDF, written in a CDA
or spoken in an audio note would go out as it came in, so such an object is withheld with the
reason (before 2026-12-08 a PDF was written with its bytes replaced by ``Anonymized`` while its
MIME type and length still claimed a PDF).
"""

from __future__ import annotations

from pydicom import Dataset

#: tag -> what it holds, as a report names it
_OPAQUE = {
    0x00420011: "an encapsulated document (PDF, CDA or other)",
    0x54001010: "waveform data (audio or other samples)",
    0x7FE00008: "float pixel data",
    0x7FE00009: "double float pixel data",
    0x56000020: "spectroscopy data",
}


def opaque_payload(ds: Dataset) -> str | None:
    """Why ``ds`` cannot be cleaned: the first payload at any depth whose content the profile
    cannot read, named for a report; None when it holds none."""
    for element in ds.iterall():
        what = _OPAQUE.get(int(element.tag))
        if what is not None:
            return f"{what}: its content cannot be cleaned"
    return None
