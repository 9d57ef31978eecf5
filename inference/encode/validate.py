"""Run the DICOM validators (dciodvfy, dsrdump, pixelmed) on a file and return their errors."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

logger = logging.getLogger(__name__)

PIXELMED_JAR = Path("/usr/share/java/pixelmed.jar")
JDK_XPATH_FLAGS = (
    "-Djdk.xml.xpathExprGrpLimit=0",
    "-Djdk.xml.xpathExprOpLimit=0",
    "-Djdk.xml.xpathTotalOpLimit=0",
)


class ValidatorMissing(RuntimeError):
    """A validator program is not installed on this machine."""


def _program(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ValidatorMissing(f"{name} is not installed (Debian package {package})")
    return path


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a validator; its output is read as UTF-8 with undecodable bytes replaced (the tools
    print the file's own values, such as a Latin-1 patient name, as they are)."""
    if not Path(command[-1]).is_file():
        raise FileNotFoundError(f"no file to validate at {command[-1]}")
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )


def dciodvfy_errors(path: Path | str, timeout: float = 60.0) -> list[str]:
    """The ``Error -`` lines dciodvfy (dicom3tools) prints for ``path`` (it exits 0 anyway).

    Raises
    ------
    ValidatorMissing
        When dciodvfy is not installed.
    """
    result = _run([_program("dciodvfy", "dicom3tools"), str(path)], timeout)
    lines = (result.stdout + "\n" + result.stderr).splitlines()
    return [line.strip() for line in lines if line.strip().startswith("Error")]


def dsrdump_errors(path: Path | str, timeout: float = 60.0) -> list[str]:
    """What dsrdump (DCMTK) reports on stderr while parsing the SR tree of ``path``.

    Returns stderr's non-empty lines, plus a line for a non-zero exit status.
    """
    result = _run([_program("dsrdump", "dcmtk"), str(path)], timeout)
    errors = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    if result.returncode != 0:
        errors.append(f"dsrdump exited with status {result.returncode}")
    return errors


def pixelmed_sr_errors(path: Path | str, timeout: float = 300.0) -> list[str]:
    """The errors of pixelmed's DicomSRValidator (SR IOD and templates such as TID 1500).

    pixelmed exits 0 even when it crashes: an exception trace, an unrecognised IOD or an
    unfinished run is reported as an error too. Several seconds per file.

    Raises
    ------
    ValidatorMissing
        When java or the pixelmed jar is not installed.
    """
    java = _program("java", "default-jre-headless")
    if not PIXELMED_JAR.is_file():
        raise ValidatorMissing(f"{PIXELMED_JAR} not found (Debian package pixelmed-apps)")
    command = [
        java,
        *JDK_XPATH_FLAGS,
        "-cp",
        str(PIXELMED_JAR),
        "com.pixelmed.validate.DicomSRValidator",
        str(path),
    ]
    result = _run(command, timeout)
    output = result.stdout + "\n" + result.stderr
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]
    errors += [line for line in lines if "Exception" in line or "unrecognized" in line]
    if not any(line.startswith("Found") and line.endswith("IOD") for line in lines):
        errors.append("pixelmed recognised no SR IOD: " + " | ".join(lines[-3:]))
    elif not any(line.startswith("IOD validation complete") for line in lines):
        errors.append("pixelmed did not complete: " + " | ".join(lines[-3:]))
    return errors
