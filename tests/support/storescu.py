"""DCMTK storescu as a modality, and the real ultrasound files it sends in tests."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dicom_node.contexts import read_file_uids
from tests.support.paths import SHARED_DATA

SHARED_US_DICOM = SHARED_DATA / "us-dicom"


def shared_us_files() -> list[Path]:
    """The real files listed in ../shared/data/us-dicom/manifest.csv (empty when absent)."""
    manifest = SHARED_US_DICOM / "manifest.csv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as handle:
        return [SHARED_US_DICOM / row["file"] for row in csv.DictReader(handle)]


#: DCMTK storescu proposes one transfer syntax family per run: the option for each
STORESCU_PROPOSE = {
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
}


def run_storescu(
    port: int, files: list[Path], called_ae: str = "LNMNODE", calling_ae: str = "MODALITY"
) -> dict[Path, str]:
    """Send ``files`` with DCMTK storescu (one run per transfer syntax); file -> outcome,
    in the order the files were sent.

    storescu can exit 0 although stores were refused, so the outcome is read from its ``-v``
    output: the text of "Received Store Response (...)", the error line for the file, or the
    fatal line (e.g. "F: Association Rejected") when the files were never sent.
    """
    executable = shutil.which("storescu", path="/usr/bin:/bin")
    if executable is None:
        pytest.skip("DCMTK storescu is not installed")
    groups: dict[str, list[Path]] = {}
    for path in files:
        groups.setdefault(read_file_uids(path)[2], []).append(path)
    outcomes: dict[Path, str] = {}
    for syntax, group in groups.items():
        command = [
            executable,
            "-v",
            "-R",
            STORESCU_PROPOSE[syntax],
            "-aet",
            calling_ae,
            "-aec",
            called_ae,
            "-to",
            "20",
            "127.0.0.1",
            str(port),
            *map(str, group),
        ]
        run = subprocess.run(
            command,
            env={**os.environ, "TCP_NODELAY": "1"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        current: Path | None = None
        fatal = "not sent"
        for line in (run.stdout + run.stderr).splitlines():
            if line.startswith("F: "):
                fatal = line
            if line.startswith("I: Sending file: "):
                current = Path(line.removeprefix("I: Sending file: "))
            elif "Received Store Response (" in line and current is not None:
                outcomes[current] = line.split("Received Store Response (", 1)[1].rstrip(")")
            elif line.startswith("E: ") and current is not None and current not in outcomes:
                outcomes[current] = line
        for path in group:  # association-level failures ("F: ...") concern every file
            outcomes.setdefault(path, fatal)
    return outcomes
