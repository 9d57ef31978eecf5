"""Tests for inference.encode.codes: every code matches the DICOM dictionaries and dicom.md."""

from __future__ import annotations

import pytest
from pydicom.sr.codedict import codes

from inference.encode import codes as c
from inference.prediction import Call


@pytest.mark.parametrize(
    ("code", "value", "scheme"),
    [
        (c.SEGMENT_CATEGORY, "91723000", "SCT"),
        (c.LYMPH_NODE, "59441001", "SCT"),
        (c.ALGORITHM_FAMILY_AI, "123110", "DCM"),
        (c.REPORT_TITLE, "126000", "DCM"),
        (c.PROCEDURE_REPORTED, "363679005", "SCT"),
        (c.FINDING, "121071", "DCM"),
        (c.FINDING_SITE, "363698007", "SCT"),
        (c.LONG_AXIS, "103339001", "SCT"),
        (c.SHORT_AXIS, "103340004", "SCT"),
        (c.RATIO, "118586006", "SCT"),
        (c.EQUIVALENT_MEANING, "121050", "DCM"),
        (c.PROBABILITY_OF_CANCER, "111047", "DCM"),
        (c.MILLIMETER, "mm", "UCUM"),
        (c.NO_UNITS, "1", "UCUM"),
        (c.METASTASIS, "128462008", "SCT"),
        (c.PRESENT, "52101004", "SCT"),
        (c.ABSENT, "272519000", "SCT"),
        (c.UNDETERMINED, "373068000", "SCT"),
        (c.FINDING_SITES["cervical"], "81105003", "SCT"),
        (c.FINDING_SITES["axillary"], "68171009", "SCT"),
        (c.FINDING_SITES["supraclavicular"], "76838003", "SCT"),
        (c.FINDING_SITES["inguinal"], "8928004", "SCT"),
        (c.LATERALITIES["right"], "24028007", "SCT"),
        (c.LATERALITIES["left"], "7771000", "SCT"),
        (c.AIR_PURPOSE_OF_REFERENCE, "Newcode1", "99IHE"),
    ],
)
def test_codes_constant_value_and_scheme_as_specified(code, value, scheme):
    assert (code.value, code.scheme_designator) == (value, scheme)


def test_codes_lymph_node_same_concept_as_pydicom():
    assert c.LYMPH_NODE == codes.SCT.LymphNode


def test_codes_every_call_has_a_code():
    assert set(c.CALL_CODES) == set(Call)
