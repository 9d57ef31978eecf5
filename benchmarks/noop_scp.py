"""A pynetdicom Storage SCP that stores nothing: the ceiling of any pynetdicom-based receiver.

``python benchmarks/noop_scp.py PORT`` runs with the node's presentation contexts, maximum PDU
length and chunked receive (each dataset streams to a temporary file, as in ``lnm-node scp``)
and answers every C-STORE 0x0000 without reading, checking, writing or recording anything.
:mod:`benchmarks.ingest` measures it beside the node, so the node's own cost per instance is
the difference between the two rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pynetdicom import _config, evt
from pynetdicom.events import Event

from dicom_node.scp import build_ae
from kernel.settings import Settings


def _accept(_event: Event) -> int:
    return 0x0000


def main() -> None:
    settings = Settings(port=int(sys.argv[1]), ae_title="NOOPSCP", calling_ae_allowlist=[])
    _config.STORE_RECV_CHUNKED_DATASET = True
    ae = build_ae(settings)
    ae.start_server(
        ("127.0.0.1", settings.port), block=True, evt_handlers=[(evt.EVT_C_STORE, _accept)]
    )


if __name__ == "__main__":
    main()
