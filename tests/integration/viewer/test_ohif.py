"""Our outputs in a real viewer: the node processes studies, Orthanc (the PACS) holds the sources
and the node's results, and OHIF (``@ohif/app`` from npm, served with Orthanc's DICOMweb on one
origin) opens them in headless Chromium. What a reader sees is asserted: the SR's outline text
(call in words with its threshold, probability in %, axes in mm where calibrated), the SEG drawn
without a console error, the heatmap opened. Screenshots are kept under ``LNM_TEST_ARTEFACTS``
(else pytest's temporary folder).
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from phantom.us_dicom import write_us_study
from tests.support.browser import colour_pixels, headless_chromium, png_array
from tests.support.network import wait_until
from tests.support.node import start_node
from tests.support.ohif import OhifServer, serve_ohif
from tests.support.orthanc import Orthanc, start_orthanc
from tests.support.storescu import SHARED_US_DICOM, run_storescu

pytestmark = pytest.mark.e2e

REAL_FILES = (
    "pydicom_data/JPGLosslessP14SV1_1s_1f_8b.dcm",  # Philips EPIQ 7C, JPEG lossless, calibrated
    "pydicom_data/US1_UNCR.dcm",  # GE LOGIQ 700 RGB, no calibration
)
"""Real files OHIF 3.13 shows through Orthanc's DICOMweb. Its PALETTE COLOR sources are left
out: OHIF fails on their lookup tables (``_getPaletteColor``) before any output is drawn."""
CALL = "Malignant neoplastic disease: {} (threshold 28.5 %)"
SEG_RED = (230, 80, 80)  # OHIF's first segment colour, blended over the grey image


@dataclass
class Processed:
    """The PACS and the viewer, with the studies the node processed (study UID -> outputs)."""

    orthanc: Orthanc
    ohif: OhifServer
    outputs: dict[str, dict[str, pydicom.Dataset]]
    calibrated: dict[str, bool]
    generated: dict[str, str]
    shots: Path


def _store(port: int, files: list[Path], called_ae: str) -> None:
    outcomes = run_storescu(port, files, called_ae=called_ae, calling_ae="US_MODALITY")
    refused = {str(p): o for p, o in outcomes.items() if not o.startswith("Success")}
    assert not refused, refused


def _results(orthanc: Orthanc) -> dict[str, dict[str, pydicom.Dataset]]:
    """The node's outputs in the PACS, by study and role (SEG, SR, heatmap)."""
    roles = {"SEG": "seg", "SR": "sr", "Grad-CAM": "heatmap"}
    found: dict[str, dict[str, pydicom.Dataset]] = {}
    for instance in orthanc.get_json("/instances"):  # type: ignore[union-attr]
        data = orthanc.get_bytes(f"/instances/{instance}/file")
        dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        role = roles.get(str(dataset.get("SeriesDescription", "")).split(" ")[0])
        if role:
            found.setdefault(str(dataset.StudyInstanceUID), {})[role] = dataset
    return found


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processed]:
    root = tmp_path_factory.mktemp("ohif")
    shots = Path(os.environ.get("LNM_TEST_ARTEFACTS", root / "screenshots")) / "ohif"
    shots.mkdir(parents=True, exist_ok=True)
    sources = {
        "calibrated": write_us_study(root / "cal", seed=21, count=1, malignant=True),
        "uncalibrated": write_us_study(
            root / "nocal",
            seed=22,
            count=1,
            mm_per_pixel=None,
            transfer_syntax=ExplicitVRLittleEndian,
        ),
    }
    real = [SHARED_US_DICOM / name for name in REAL_FILES if (SHARED_US_DICOM / name).is_file()]
    files = [p for paths in sources.values() for p in paths] + real
    generated = {
        str(pydicom.dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID): name
        for name, paths in sources.items()
    }
    calibrated = {}
    for path in files:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        calibrated[str(header.StudyInstanceUID)] = "SequenceOfUltrasoundRegions" in header
    orthanc = start_orthanc(root / "orthanc", dicomweb=True)
    node = start_node(
        root / "node", "--pacs", orthanc.destination, "--quiet-seconds", "2",
        scope_open=True,  # generated and real files of any anatomy: the breast model runs on all
    )
    try:
        _store(orthanc.dicom_port, files, "ORTHANC")
        _store(node.port, files, node.ae_title)

        def delivered() -> bool:
            states = node.cli_json("status")["counts"]["jobs"]  # type: ignore[index]
            assert not {k for k in states if k.startswith("FAILED")}, node.log()[-3000:]
            return states.get("DELIVERED", 0) == len(calibrated)

        wait_until(delivered, timeout=300, interval=2, what="every study's results in the PACS")
        with serve_ohif(orthanc.http_port) as ohif:
            yield Processed(orthanc, ohif, _results(orthanc), calibrated, generated, shots)
    finally:
        node.stop()
        orthanc.stop()


def _open(driver, url: str, ready: str, timeout: float = 60) -> str:  # type: ignore[no-untyped-def]
    """Load ``url``; wait until the page's SVG and text hold ``ready``; return that text."""
    driver.get(url)
    script = (
        "return Array.from(document.querySelectorAll('svg text')).map(t => t.textContent)"
        ".join('\\n') + '\\n' + document.body.innerText"
    )
    text = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = driver.execute_script(script)
        if ready in text:
            time.sleep(1.0)  # let the viewport finish drawing
            return driver.execute_script(script)
        time.sleep(0.5)
    raise AssertionError(f"{ready!r} never appeared at {url}; the page shows:\n{text[-2000:]}")


def _errors(driver) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _check_study(driver, processed: Processed, study: str, name: str) -> None:  # type: ignore[no-untyped-def]
    outputs = processed.outputs[study]
    sr = outputs["sr"]
    if "SCOORD" not in str(sr):
        # nothing segmented: the SR holds no outline, and OHIF draws an SR's text only at one
        _open(driver, processed.ohif.viewer_url(study, str(sr.SeriesInstanceUID)), "SR AI ")
        driver.save_screenshot(str(processed.shots / f"{name}-sr-no-outline.png"))
        assert _errors(driver) == []
        return
    text = _open(
        driver,
        processed.ohif.viewer_url(study, str(sr.SeriesInstanceUID)),
        "Probability of cancer: ",
    )
    driver.save_screenshot(str(processed.shots / f"{name}-sr.png"))
    assert "Lymph node" not in text and "Metastasis" not in text
    assert CALL.format("present") in text or CALL.format("absent") in text
    assert re.search(r"Probability of cancer: \d{1,3}\.\d\d %", text), text
    if processed.calibrated[study]:
        assert "Long axis: " in text and "Short axis: " in text and " mm" in text
    else:
        assert "Long axis" not in text
    assert _errors(driver) == []

    if "seg" in outputs:
        seg = outputs["seg"]
        _open(driver, processed.ohif.viewer_url(study, str(seg.SeriesInstanceUID)), "SEG AI ")
        time.sleep(3.0)
        shot = driver.get_screenshot_as_png()
        (processed.shots / f"{name}-seg.png").write_bytes(shot)
        assert _errors(driver) == []
        assert colour_pixels(png_array(shot), SEG_RED, tolerance=60) > 200  # the segment drawn

    heatmap = outputs["heatmap"]
    _open(driver, processed.ohif.viewer_url(study, str(heatmap.SeriesInstanceUID)), "Grad-CAM AI")
    time.sleep(2.0)
    driver.save_screenshot(str(processed.shots / f"{name}-heatmap.png"))
    assert _errors(driver) == []


def test_ohif_generated_studies_sr_seg_heatmap_read_right(processed: Processed) -> None:
    with headless_chromium(1700, 850) as driver:
        for study, name in processed.generated.items():
            _check_study(driver, processed, study, f"generated-{name}")


@pytest.mark.shared_data
def test_ohif_real_files_sr_seg_heatmap_read_right(processed: Processed) -> None:
    real = [SHARED_US_DICOM / name for name in REAL_FILES]
    if not all(path.is_file() for path in real):
        pytest.skip(f"real US files not found under {SHARED_US_DICOM}")
    with headless_chromium(1700, 850) as driver:
        for path in real:
            study = str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)
            assert study in processed.outputs, f"no results for {path.name}"
            _check_study(driver, processed, study, f"real-{path.stem}")
