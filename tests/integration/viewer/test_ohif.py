"""Our outputs in a real viewer: the node processes studies, Orthanc (the PACS) holds the sources
and the node's results, and OHIF (``@ohif/app`` from npm, served with Orthanc's DICOMweb on one
origin) opens them in headless Chromium. What a reader sees is asserted: the SR's outline text
(call in words with its threshold, probability in %, axes in mm where calibrated) and the long
and short axis drawn as lines on the image in the SR's proportions, the SEG drawn
without a console error, the heatmap opened; the patient's name as the source has it on every
output, for a UTF-8 and a Japanese (ISO 2022) name; the report that replaces an earlier one
after a late instance, with its note, both listed. Screenshots are kept under
``LNM_TEST_ARTEFACTS`` (else pytest's temporary folder).
"""

from __future__ import annotations

import io
import math
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from selenium.webdriver.common.by import By

from inference.encode.outputs import NOTE_REPLACES
from phantom.us_dicom import make_us_dataset, write_us_study
from tests.support.browser import colour_pixels, headless_chromium, png_array
from tests.support.network import wait_until
from tests.support.node import start_node
from tests.support.ohif import OhifServer, serve_ohif
from tests.support.orthanc import Orthanc, start_orthanc
from tests.support.sr_content import numeric_value
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
NAMED = {
    # study: (Specific Character Set, PatientName, what OHIF's header shows of it)
    "utf8": ("ISO_IR 192", "Müller-Łukasz^Zoë Ωμέγα", "Müller-Łukasz, Zoë Ωμέγα"),
    # as Japanese scanners write it (first value empty); the name is PS3.5 H.3.1's example
    "japanese": (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎=やまだ^たろう", "Yamada, Tarou"),
}
"""Non-ASCII patient names. OHIF 3.13 shows only a name's alphabetic group (``formatPN``): the
Japanese ideographic and phonetic groups are shown nowhere, for the source as for our outputs
(OHIF's limit, not ours), so for those the test reads the outputs from the PACS, and compares
the DICOMweb metadata OHIF receives with the source's. Orthanc's study list (QIDO) drops what its
DefaultEncoding (Latin-1 unless configured) cannot hold, of the source's name as well ("Ł" and
the Greek letters; the kanji): the viewer header, which OHIF fills from a series' own metadata,
is what is checked."""


@dataclass
class Processed:
    """The PACS and the viewer, with the studies the node processed (study UID -> outputs)."""

    orthanc: Orthanc
    ohif: OhifServer
    outputs: dict[str, dict[str, list[pydicom.Dataset]]]
    calibrated: dict[str, bool]
    generated: dict[str, str]
    named: dict[str, str]
    replaced: str
    """The study whose first report a late instance replaced: two of each output."""
    shots: Path

    def single(self, study: str) -> dict[str, pydicom.Dataset]:
        """The study's outputs by role, where the node reported on it once."""
        found = self.outputs[study]
        assert all(len(datasets) == 1 for datasets in found.values()), found
        return {role: datasets[0] for role, datasets in found.items()}

    def series(self, study: str) -> dict[str, dict[str, object]]:
        """The study's series as Orthanc's DICOMweb metadata (what OHIF reads) of their first
        instance, by Series Instance UID."""
        found = self.orthanc.get_json(f"/dicom-web/studies/{study}/metadata")
        return {item["0020000E"]["Value"][0]: item for item in found}  # type: ignore[union-attr]


def _store(port: int, files: list[Path], called_ae: str) -> None:
    outcomes = run_storescu(port, files, called_ae=called_ae, calling_ae="US_MODALITY")
    refused = {str(p): o for p, o in outcomes.items() if not o.startswith("Success")}
    assert not refused, refused


def _results(orthanc: Orthanc) -> dict[str, dict[str, list[pydicom.Dataset]]]:
    """The node's outputs in the PACS, by study and role (SEG, SR, heatmap): one of each per
    report the node delivered on the study."""
    roles = {"SEG": "seg", "SR": "sr", "Grad-CAM": "heatmap"}
    found: dict[str, dict[str, list[pydicom.Dataset]]] = {}
    for instance in orthanc.get_json("/instances"):  # type: ignore[union-attr]
        data = orthanc.get_bytes(f"/instances/{instance}/file")
        dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        role = roles.get(str(dataset.get("SeriesDescription", "")).split(" ")[0])
        if role:
            found.setdefault(str(dataset.StudyInstanceUID), {}).setdefault(role, []).append(dataset)
    return found


def _rename(paths: list[Path], charset: str | list[str], name: str) -> list[Path]:
    """Give the instances at ``paths`` the patient name ``name`` in ``charset``."""
    for path in paths:
        dataset = pydicom.dcmread(path)
        dataset.SpecificCharacterSet = charset
        dataset.PatientName = name
        dataset.save_as(path, enforce_file_format=True)
    return paths


def _late_study(folder: Path) -> tuple[Path, Path]:
    """A study's instance 2, sent first, and its instance 1, sent after the node reported on
    instance 2: first in its series, so the model's input of the study's next generation."""
    study = generate_uid(entropy_srcs=["ohif-late-study"])
    series = generate_uid(entropy_srcs=["ohif-late-series"])
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for number in (2, 1):
        dataset, _, _ = make_us_dataset(
            seed=60 + number, malignant=True, study_instance_uid=study,
            series_instance_uid=series, instance_number=number,
        )
        path = folder / f"{number}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths[0], paths[1]


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
    named_sources = {
        key: _rename(
            write_us_study(root / key, seed=23 + index, count=1, malignant=True), charset, name
        )
        for index, (key, (charset, name, _)) in enumerate(NAMED.items())
    }
    first, late = _late_study(root / "late")
    real = [SHARED_US_DICOM / name for name in REAL_FILES if (SHARED_US_DICOM / name).is_file()]
    files = [p for group in (sources, named_sources) for paths in group.values() for p in paths]
    files += [first, *real]

    def study_of(path: Path) -> str:
        return str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)

    generated = {study_of(paths[0]): name for name, paths in sources.items()}
    named = {study_of(paths[0]): key for key, paths in named_sources.items()}
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

        def delivered(count: int) -> bool:
            states = node.cli_json("status")["counts"]["jobs"]  # type: ignore[index]
            assert not {k for k in states if k.startswith(("FAILED", "SKIPPED"))}, (
                states, node.log()[-3000:]
            )
            return states.get("DELIVERED", 0) == count

        wait_until(
            lambda: delivered(len(calibrated)), timeout=300, interval=2,
            what="every study's results in the PACS",
        )
        _store(orthanc.dicom_port, [late], "ORTHANC")
        _store(node.port, [late], node.ae_title)
        wait_until(
            lambda: delivered(len(calibrated) + 1), timeout=300, interval=2,
            what="the report of the late instance's generation in the PACS",
        )
        with serve_ohif(orthanc.http_port) as ohif:
            yield Processed(
                orthanc, ohif, _results(orthanc), calibrated, generated, named,
                study_of(first), shots,
            )
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


def _patient_header(driver) -> str:  # type: ignore[no-untyped-def]
    """What OHIF's viewer header shows of the patient (name, ID, sex), opened as a reader opens
    it: a click on "Patient". OHIF fills it from the series whose display sets it added last."""
    button = driver.find_element(By.XPATH, "//div[text()='Patient']")
    panel = button.find_element(By.XPATH, "./ancestor::*[3]")
    button.click()
    text = ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = panel.text
        if text and not text.startswith("Patient"):
            return text
        time.sleep(0.3)
    raise AssertionError(f"OHIF's patient panel did not open; it shows {text!r}")


def _sr_text(processed: Processed, study: str, text: str) -> None:
    """The SR's outline text as every report shows it: call, probability, axes where calibrated."""
    assert "Lymph node" not in text and "Metastasis" not in text
    assert CALL.format("present") in text or CALL.format("absent") in text
    assert re.search(r"Probability of cancer: \d{1,3}\.\d\d %", text), text
    if processed.calibrated[study]:
        assert "Long axis: " in text and "Short axis: " in text and " mm" in text
    else:
        assert "Long axis" not in text


Line = tuple[tuple[float, float], tuple[float, float]]


TEXT_BOX_LINK_DASH = "2,3"
"""How Cornerstone dashes the line from a shape to its text box (``textBoxLinkLineDash``)."""


def _drawn_lines(driver) -> list[Line]:  # type: ignore[no-untyped-def]
    """The straight lines OHIF draws in its viewports' annotation layers (screen pixels), but
    the links to text boxes: an SR's 2-point POLYLINEs (its outline is a polyline)."""
    script = (
        "return Array.from(document.querySelectorAll('svg.svg-layer line'))"
        ".map(l => [l.x1, l.y1, l.x2, l.y2].map(a => a.baseVal.value)"
        ".concat([l.getAttribute('stroke-dasharray') || '']))"
    )
    return [
        ((x1, y1), (x2, y2))
        for x1, y1, x2, y2, dash in driver.execute_script(script)
        if dash.replace(" ", "") != TEXT_BOX_LINK_DASH
    ]


def _cross(a: Line, b: Line) -> bool:
    """Whether the segments cross at a point inside both."""

    def side(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    return side(*a, b[0]) * side(*a, b[1]) < 0 and side(*b, a[0]) * side(*b, a[1]) < 0


def _calipers(driver, sr: pydicom.Dataset) -> None:  # type: ignore[no-untyped-def]
    """The long and short axis drawn as two lines that cross, their lengths in the SR's ratio
    (the generated and the real calibrated files have square pixels); no line where nothing
    was measured."""
    long_mm, short_mm = numeric_value(sr, "103339001"), numeric_value(sr, "103340004")
    lines = _drawn_lines(driver)
    if long_mm is None or short_mm is None:
        assert lines == [], lines
        return
    assert len(lines) == 2 and _cross(*lines), lines
    short, long = sorted(math.dist(*line) for line in lines)
    assert short / long == pytest.approx(short_mm / long_mm, abs=0.03), (lines, long_mm, short_mm)


def _read_sr(driver, processed: Processed, study: str, sr: pydicom.Dataset, shot: str) -> str:  # type: ignore[no-untyped-def]
    """Open the report ``sr`` with an outline in OHIF, keep a screenshot named ``shot``, check
    its text as a reader sees it (:func:`_sr_text`) and the axes drawn (:func:`_calipers`), and
    return that text."""
    text = _open(
        driver,
        processed.ohif.viewer_url(study, str(sr.SeriesInstanceUID)),
        "Probability of cancer: ",
    )
    driver.save_screenshot(str(processed.shots / f"{shot}.png"))
    _sr_text(processed, study, text)
    _calipers(driver, sr)
    return text


def _check_study(driver, processed: Processed, study: str, name: str) -> None:  # type: ignore[no-untyped-def]
    outputs = processed.single(study)
    sr = outputs["sr"]
    if "SCOORD" not in str(sr):
        # nothing segmented: the SR holds no outline, and OHIF draws an SR's text only at one
        _open(driver, processed.ohif.viewer_url(study, str(sr.SeriesInstanceUID)), "SR AI ")
        driver.save_screenshot(str(processed.shots / f"{name}-sr-no-outline.png"))
        assert _errors(driver) == []
        return
    text = _read_sr(driver, processed, study, sr, f"{name}-sr")
    assert NOTE_REPLACES not in text
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


def _source_series(processed: Processed, study: str) -> str:
    """The one series of ``study`` that is not the node's."""
    ours = {str(dataset.SeriesInstanceUID) for dataset in processed.single(study).values()}
    sources = [uid for uid in processed.series(study) if uid not in ours]
    assert len(sources) == 1, sources
    return sources[0]


def test_ohif_non_ascii_patient_names_shown_as_the_source_on_every_output(processed: Processed) -> None:
    with headless_chromium(1700, 850) as driver:
        for study, key in processed.named.items():
            _, written, shown = NAMED[key]
            _check_study(driver, processed, study, f"name-{key}")
            outputs = processed.single(study)
            metadata = processed.series(study)
            source = _source_series(processed, study)
            for role, series in [("source", source)] + [
                (role, str(dataset.SeriesInstanceUID)) for role, dataset in outputs.items()
            ]:
                # OHIF loads this series alone, so its header shows this series' name
                description = metadata[series]["0008103E"]["Value"][0]  # type: ignore[index]
                _open(driver, processed.ohif.viewer_url(study, series, only=True), description)
                header = _patient_header(driver)
                driver.save_screenshot(str(processed.shots / f"name-{key}-{role}-header.png"))
                assert header.splitlines()[0] == shown, (role, header)
                assert _errors(driver) == [], role
            for role, dataset in outputs.items():
                # every group of the name, also those OHIF does not show, in the PACS's copy
                assert str(dataset.PatientName) == written, role
                if key != "japanese":  # see the expected failure below
                    assert metadata[str(dataset.SeriesInstanceUID)]["00100010"] == (
                        metadata[source]["00100010"]
                    ), role


def test_ohif_japanese_name_of_outputs_reaches_the_viewer_as_the_source(processed: Processed) -> None:
    study = next(study for study, key in processed.named.items() if key == "japanese")
    metadata = processed.series(study)
    source = metadata[_source_series(processed, study)]["00100010"]
    for role, dataset in processed.single(study).items():
        assert metadata[str(dataset.SeriesInstanceUID)]["00100010"] == source, role


def test_ohif_report_replacing_an_earlier_one_reads_right_both_listed(processed: Processed) -> None:
    study = processed.replaced
    reports = processed.outputs[study]["sr"]
    assert len(reports) == 2, [str(r.SOPInstanceUID) for r in reports]
    newer = next(r for r in reports if "PredecessorDocumentsSequence" in r)
    older = next(r for r in reports if r is not newer)
    listed = newer.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0]
    assert listed.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == older.SOPInstanceUID
    with headless_chromium(1700, 850) as driver:
        for sr, name, instance in ((newer, "newer", "I:1 (1/2)"), (older, "older", "I:2 (2/2)")):
            text = _read_sr(driver, processed, study, sr, f"replaced-{name}-sr")
            # the newer report outlines the late instance (first in its series), the older one
            # the instance it had; only the newer one says it replaces a report
            assert instance in text, text
            assert (NOTE_REPLACES in text) is (sr is newer), text
            assert _errors(driver) == []
            # the study panel lists both reports (and both SEGs and heatmaps), each once
            for datasets in processed.outputs[study].values():
                for dataset in datasets:
                    entry = f"{dataset.SeriesDescription}\nS:{dataset.SeriesNumber}"
                    assert text.count(entry) == 1, (entry, text)


def test_ohif_replaced_outputs_told_apart_in_the_study_panel(processed: Processed) -> None:
    """The replacing report's SEG, SR and heatmap are listed as revision 1, numbered 10 higher
    (before 2026-12-07 both generations listed identical entries, "SR AI ... S:9002" twice)."""
    for role, datasets in processed.outputs[processed.replaced].items():
        entries = {(str(d.SeriesDescription), int(d.SeriesNumber)) for d in datasets}
        assert len(entries) == len(datasets) == 2, (role, entries)
        (first, first_number), (revised, revised_number) = sorted(entries, key=lambda e: e[1])
        assert revised == f"{first} (revision 1)" and revised_number == first_number + 10, entries
