"""Objects whose payload the profile cannot clean (an encapsulated PDF or CDA, a voice note) are
withheld with the reason, never written."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from typer.testing import CliRunner

from cli.main import app
from deid.files import deidentify_tree
from deid.payload import opaque_payload
from phantom.us_dicom import make_us_dataset

NAME, MRN = "Quimbleworth^Jaquelina", "MRN-4711-0815"
_PDF_TEXT = b"BT /F1 12 Tf 72 720 Td (Patient: Jaquelina Quimbleworth, MRN-4711-0815) Tj ET"
_PDF = b"".join(
    [
        b"%PDF-1.4\n",
        b"1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n",
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n",
        (
            b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R"
            b"/Resources<</Font<</F1<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>>>>>>>endobj\n"
        ),
        b"4 0 obj<</Length %d>>stream\n%s\nendstream endobj\n" % (len(_PDF_TEXT), _PDF_TEXT),
        b"trailer<</Root 1 0 R>>\n%%EOF\n",
    ]
)
_CDA = (
    b'<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"><recordTarget>'
    b'<patientRole><id extension="MRN-4711-0815"/><patient><name><given>Jaquelina</given>'
    b"<family>Quimbleworth</family></name></patient></patientRole></recordTarget>"
    b"</ClinicalDocument>"
)


def _patient(ds: Dataset, sop_class: str, modality: str) -> None:
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = NAME, MRN, "19610203", "F"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.ReferringPhysicianName = (
        "20240117",
        "1010",
        "",
        "",
    )
    ds.StudyID, ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "", modality, 1, 1
    ds.Manufacturer, ds.ContentDate, ds.ContentTime = "", "20240117", "101010"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def _document(sop_class: str, mime: str, payload: bytes) -> Dataset:
    """An Encapsulated PDF or CDA object (PS3.3 A.45, A.75) whose document names the patient."""
    ds = Dataset()
    _patient(ds, sop_class, "DOC")
    ds.ConversionType, ds.BurnedInAnnotation = "WSD", "YES"
    ds.AcquisitionDateTime, ds.DocumentTitle = "20240117101010", "Ultrasound report"
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = mime
    ds.EncapsulatedDocument = payload + b"\0" * (len(payload) % 2)
    ds.EncapsulatedDocumentLength = len(payload)
    return ds


def _voice_note() -> Dataset:
    """A Basic Voice Audio object (PS3.3 A.34.2): 8 kHz mu-law samples of a dictation."""
    ds = Dataset()
    _patient(ds, "1.2.840.10008.5.1.4.1.1.9.4.1", "AU")
    channel = Dataset()
    channel.WaveformChannelNumber, channel.ChannelLabel = 1, "voice"
    channel.ChannelSourceSequence = [Dataset()]
    channel.ChannelSourceSequence[0].CodeValue = "110029"
    channel.ChannelSourceSequence[0].CodingSchemeDesignator = "DCM"
    channel.ChannelSourceSequence[0].CodeMeaning = "Voice"
    waveform = Dataset()
    waveform.WaveformOriginality, waveform.NumberOfWaveformChannels = "ORIGINAL", 1
    waveform.NumberOfWaveformSamples, waveform.SamplingFrequency = 8, "8000"
    waveform.ChannelDefinitionSequence = [channel]
    waveform.WaveformBitsAllocated, waveform.WaveformSampleInterpretation = 8, "MB"
    waveform.WaveformData = bytes(range(8))
    ds.WaveformSequence = [waveform]
    return ds


CASES = {
    "pdf": (
        _document("1.2.840.10008.5.1.4.1.1.104.1", "application/pdf", _PDF),
        "an encapsulated document",
    ),
    "cda": (
        _document("1.2.840.10008.5.1.4.1.1.104.2", "text/XML", _CDA),
        "an encapsulated document",
    ),
    "voice": (_voice_note(), "waveform data"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_deidentify_object_with_payload_it_cannot_clean_withheld_saying_why(
    tmp_path: Path, kind: str
) -> None:
    """An encapsulated PDF went out "written", its bytes replaced by "Anonymized" while its MIME
    type and length still claimed a PDF; a voice note went out with its samples as they were."""
    ds, reason = CASES[kind]
    (tmp_path / "in").mkdir()
    ds.save_as(tmp_path / "in" / f"{kind}.dcm", enforce_file_format=True)
    image, _, _ = make_us_dataset(seed=4, rows=64, cols=80)
    image.save_as(tmp_path / "in" / "image.dcm", enforce_file_format=True)
    report = deidentify_tree(tmp_path / "in", tmp_path / "out", "test-secret")
    assert len(report.written) == 1 and not report.failed
    assert [(path.name, why.startswith(reason)) for path, why in report.withheld] == [
        (f"{kind}.dcm", True)
    ]
    assert "cannot be cleaned" in report.withheld[0][1]
    for output in report.written:
        assert pydicom.dcmread(output).SOPClassUID == image.SOPClassUID


def test_opaque_payload_ultrasound_image_has_none() -> None:
    image, _, _ = make_us_dataset(seed=4, rows=64, cols=80)
    assert opaque_payload(image) is None


def test_deidentify_cli_encapsulated_pdf_reported_withheld_exit_0(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    CASES["pdf"][0].save_as(tmp_path / "in" / "report.dcm", enforce_file_format=True)
    result = CliRunner().invoke(
        app,
        ["deidentify", str(tmp_path / "in"), str(tmp_path / "out")],
        env={"LNM_DEID_UID_SECRET": "k" * 32, "COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert (
        f"withheld {tmp_path / 'in' / 'report.dcm'}: an encapsulated document (PDF, CDA or "
        "other): its content cannot be cleaned"
    ) in result.output
    assert "0 written, 1 withheld, 0 skipped, 0 failed" in result.output
    assert not list((tmp_path / "out").rglob("*.dcm"))
