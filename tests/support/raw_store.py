"""Send a Part 10 file's dataset bytes as they are (no decoding, no re-encoding): what a
broken or malicious modality sends. Used with the hostile corpus of :mod:`tests.support.corpus`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    UltrasoundImageStorage,
)
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.presentation import build_context

from kernel.settings import Destination


@contextmanager
def _chunked_send() -> Iterator[None]:
    """pynetdicom sends a file's dataset bytes as they are while this is active."""
    previous = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = previous


def _associate(
    destination: Destination, calling_ae: str, syntaxes: list[str], timeout: float
) -> Association:
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = timeout
    classes = [UltrasoundImageStorage, "1.2.840.10008.5.1.4.1.1.3.1"]
    contexts = [build_context(c, [s]) for c in classes for s in syntaxes]
    assoc = ae.associate(
        destination.host, destination.port, contexts=contexts, ae_title=destination.ae_title
    )
    if not assoc.is_established:
        raise ConnectionError(f"association with {destination} not established")
    return assoc


def send_raw(
    destination: Destination, paths: list[Path], calling_ae: str, timeout: float = 30
) -> list[int | None]:
    """C-STORE each file's dataset bytes unchanged; the status of each, None when unanswered.

    A lost association is re-made for the next file (the lost one's status is None).
    """
    syntaxes = sorted(
        {
            ExplicitVRLittleEndian,
            ImplicitVRLittleEndian,
            ExplicitVRBigEndian,
            RLELossless,
            JPEGBaseline8Bit,
            JPEGLSLossless,
            JPEG2000Lossless,
            DeflatedExplicitVRLittleEndian,
        }
    )
    statuses: list[int | None] = []
    with _chunked_send():
        assoc = _associate(destination, calling_ae, syntaxes, timeout)
        try:
            for path in paths:
                if not assoc.is_established:
                    assoc = _associate(destination, calling_ae, syntaxes, timeout)
                answer = assoc.send_c_store(path)
                statuses.append(int(answer.Status) if "Status" in answer else None)
        finally:
            if assoc.is_established:
                assoc.release()
    return statuses
