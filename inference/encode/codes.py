"""The coded concepts the encoders write that are the same for every model (checked against
pydicom's dictionaries), and the conversion of a model spec's codes.

What a model found (segment category and type, finding, finding site, probability concept, the
concept of its call) is not here: it comes from the model's spec (:mod:`inference.registry`).

Sources: PS3.16 (TID 1500, CID 7151, CID 244...), pydicom ``codes``; the IHE AI Results (AIR)
profile for the Contributing Equipment purpose.
"""

from __future__ import annotations

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from inference.prediction import Call
from inference.registry import Code as SpecCode

# --- SEG segment (PS3.3 C.8.20.4) ---
ALGORITHM_FAMILY_AI = codes.DCM.ArtificialIntelligence  # (123110, DCM)

# --- SR document (TID 1500) ---
REPORT_TITLE = codes.DCM.ImagingMeasurementReport  # (126000, DCM)
PROCEDURE_REPORTED = codes.SCT.ImagingProcedure  # (363679005, SCT); pixelmed rejects 16310003
FINDING = codes.DCM.Finding  # (121071, DCM)
FINDING_SITE = codes.SCT.FindingSite  # (363698007, SCT)
LATERALITY = codes.SCT.Laterality  # (272741003, SCT)
TRACKING_IDENTIFIER = codes.DCM.TrackingIdentifier  # (112039, DCM)
TRACKING_UID = codes.DCM.TrackingUniqueIdentifier  # (112040, DCM)
ALGORITHM_NAME = codes.DCM.AlgorithmName  # (111001, DCM)
ALGORITHM_VERSION = codes.DCM.AlgorithmVersion  # (111003, DCM)
ALGORITHM_PARAMETERS = codes.DCM.AlgorithmParameters  # (111002, DCM)

# --- measurements (TID 1419) ---
LONG_AXIS = codes.SCT.LongAxis  # (103339001, SCT)
SHORT_AXIS = codes.SCT.ShortAxis  # (103340004, SCT)
RATIO = codes.SCT.Ratio  # (118586006, SCT)
EQUIVALENT_MEANING = codes.DCM.EquivalentMeaningOfConceptName  # (121050, DCM)
RATIO_MEANING_TEXT = "Short axis to long axis ratio"
MILLIMETER = codes.UCUM.Millimeter  # (mm, UCUM)
PERCENT = codes.UCUM.Percent  # (%, UCUM): the probability, as viewers show it
NO_UNITS = codes.UCUM.NoUnits  # (1, UCUM)

# --- qualitative evaluation: the call (its concept is the spec's) ---
PRESENT = codes.SCT.Present  # (52101004, SCT)
ABSENT = codes.SCT.Absent  # (272519000, SCT)
UNDETERMINED = codes.SCT.Undetermined  # (373068000, SCT)
CALL_CODES: dict[Call, Code] = {
    Call.PRESENT: PRESENT,
    Call.ABSENT: ABSENT,
    Call.UNDETERMINED: UNDETERMINED,
}

# --- free text in the SR ---
COMMENT = codes.DCM.Comment  # (121106, DCM)

# --- laterality, from the source's (Image)Laterality ---
LATERALITIES: dict[str, Code] = {
    "right": codes.SCT.Right,  # 24028007
    "left": codes.SCT.Left,  # 7771000
}

# --- heatmap: how it was derived (CID 7203 Image Derivation) ---
HEATMAP_DERIVATION = codes.cid7203.PixelByPixelAddition  # (113042, DCM): frame + colour map

# --- IHE AIR: Contributing Equipment purpose of reference (IHE AI Results, 99IHE) ---
AIR_PURPOSE_OF_REFERENCE = Code("Newcode1", "99IHE", "Processing Algorithm")


def from_spec(code: SpecCode) -> Code:
    """A model spec's code as the pydicom ``Code`` the encoders write."""
    return Code(code.value, code.scheme, code.meaning)
