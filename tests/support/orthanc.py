"""A real Orthanc on loopback-only ports, as the PACS of integration and end-to-end tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.network import free_port, wait_until

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


@dataclass
class Orthanc:
    dicom_port: int
    http_port: int
    process: subprocess.Popen[bytes]
    ae_title: str = "ORTHANC"

    @property
    def destination(self) -> str:
        return f"{self.ae_title}@127.0.0.1:{self.dicom_port}"

    def get_json(self, path: str) -> object:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=10) as reply:
            return json.loads(reply.read())

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=30) as reply:
            return reply.read()

    @property
    def dicomweb_root(self) -> str:
        """The DICOMweb root (started with ``dicomweb=True``)."""
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def instance_ids(self) -> list[str]:
        return list(self.get_json("/instances"))  # type: ignore[arg-type]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_orthanc(
    folder: Path, dicom_port: int | None = None, dicomweb: bool = False, http_port: int | None = None
) -> Orthanc:
    """Start Orthanc with its storage in ``folder`` (on ``dicom_port`` or a free one); skip when not installed.

    With ``dicomweb`` its DICOMweb plugin is loaded (root ``/dicom-web/``): skip when missing.
    """
    binary = shutil.which("Orthanc")
    if binary is None:
        pytest.skip("Orthanc is not installed (Debian package orthanc)")
    if dicomweb and not DICOMWEB_PLUGIN.is_file():
        pytest.skip(f"Orthanc's DICOMweb plugin is not installed ({DICOMWEB_PLUGIN}; Debian orthanc-dicomweb)")
    dicom_port, http_port = dicom_port or free_port(), http_port or free_port()
    config = {
        "Name": "lnm-test-pacs",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": False,
        "Plugins": [str(DICOMWEB_PLUGIN)] if dicomweb else [],
        "DicomWeb": {"Enable": dicomweb, "Root": "/dicom-web/"},
        "StableAge": 1,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "orthanc.json").write_text(json.dumps(config))
    with open(folder / "orthanc.log", "wb") as log:
        process = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT)
    orthanc = Orthanc(dicom_port, http_port, process)

    def ready() -> bool:
        try:
            orthanc.get_json("/system")
            return True
        except OSError:
            return False

    wait_until(ready, timeout=30, what="Orthanc's REST API")
    return orthanc
