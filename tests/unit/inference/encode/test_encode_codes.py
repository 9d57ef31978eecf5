"""Tests for inference.encode.codes: every code matches the DICOM dictionaries and dicom.md."""

from __future__ import annotations

import pytest
from pydicom.sr.codedict import codes

from inference.encode import codes as c
from inference.prediction import Call
from inference.registry import Code as SpecCode


@pytest.mark.parametrize(
    ("code", "value", "scheme"),
    [
        (c.ALGORITHM_FAMILY_AI, "123110", "DCM"),
        (c.REPORT_TITLE, "126000", "DCM"),
        (c.PROCEDURE_REPORTED, "363679005", "SCT"),
        (c.FINDING, "121071", "DCM"),
        (c.FINDING_SITE, "363698007", "SCT"),
        (c.LONG_AXIS, "103339001", "SCT"),
        (c.SHORT_AXIS, "103340004", "SCT"),
        (c.RATIO, "118586006", "SCT"),
        (c.EQUIVALENT_MEANING, "121050", "DCM"),
        (c.MILLIMETER, "mm", "UCUM"),
        (c.NO_UNITS, "1", "UCUM"),
        (c.PERCENT, "%", "UCUM"),
        (c.ALGORITHM_PARAMETERS, "111002", "DCM"),
        (c.HEATMAP_DERIVATION, "113042", "DCM"),
        (c.PRESENT, "52101004", "SCT"),
        (c.ABSENT, "272519000", "SCT"),
        (c.UNDETERMINED, "373068000", "SCT"),
        (c.LATERALITIES["right"], "24028007", "SCT"),
        (c.LATERALITIES["left"], "7771000", "SCT"),
        (c.AIR_PURPOSE_OF_REFERENCE, "Newcode1", "99IHE"),
    ],
)
def test_codes_constant_value_and_scheme_as_specified(code, value, scheme):
    assert (code.value, code.scheme_designator) == (value, scheme)


def test_codes_air_purpose_meaning_processing_algorithm():
    assert c.AIR_PURPOSE_OF_REFERENCE.meaning == "Processing Algorithm"


def test_from_spec_code_same_concept_and_meaning():
    spec_code = SpecCode(value="52988006", scheme="SCT", meaning="Lesion")
    assert c.from_spec(spec_code) == codes.SCT.Lesion
    assert c.from_spec(spec_code).meaning == "Lesion"


def test_codes_every_call_has_a_code():
    assert set(c.CALL_CODES) == set(Call)
