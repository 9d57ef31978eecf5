"""Every coded concept the encoders write, in one place (checked against pydicom's dictionaries).

Sources: PS3.16 (TID 1500, CID 7151, CID 244...), pydicom ``codes``; the IHE AI Results (AIR)
profile for the Contributing Equipment purpose.
"""

from __future__ import annotations

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from inference.prediction import Call

# --- SEG segment (PS3.3 C.8.20.4; CID 7150 / 7151) ---
SEGMENT_CATEGORY = codes.SCT.AnatomicalStructure  # (91723000, SCT, "Anatomical Structure")
LYMPH_NODE = Code("59441001", "SCT", "Lymph node")  # pydicom writes "Lymph Node"
ALGORITHM_FAMILY_AI = codes.DCM.ArtificialIntelligence  # (123110, DCM)

# --- SR document (TID 1500) ---
REPORT_TITLE = codes.DCM.ImagingMeasurementReport  # (126000, DCM)
PROCEDURE_REPORTED = codes.SCT.ImagingProcedure  # (363679005, SCT); pixelmed rejects 16310003
FINDING = codes.DCM.Finding  # (121071, DCM)
FINDING_SITE = codes.SCT.FindingSite  # (363698007, SCT)
LATERALITY = codes.SCT.Laterality  # (272741003, SCT)

# --- measurements (TID 1419) ---
LONG_AXIS = codes.SCT.LongAxis  # (103339001, SCT)
SHORT_AXIS = codes.SCT.ShortAxis  # (103340004, SCT)
RATIO = codes.SCT.Ratio  # (118586006, SCT)
EQUIVALENT_MEANING = codes.DCM.EquivalentMeaningOfConceptName  # (121050, DCM)
RATIO_MEANING_TEXT = "Short axis to long axis ratio"
PROBABILITY_OF_CANCER = codes.DCM.ProbabilityOfCancer  # (111047, DCM)
MILLIMETER = codes.UCUM.Millimeter  # (mm, UCUM)
NO_UNITS = codes.UCUM.NoUnits  # (1, UCUM)

# --- qualitative evaluation: the call ---
METASTASIS = codes.SCT.Metastasis  # (128462008, SCT)
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

# --- finding sites (CID 7600-ish SNOMED lymph-node structures) and laterality ---
FINDING_SITES: dict[str, Code] = {
    "cervical": codes.SCT.CervicalLymphNode,  # 81105003
    "axillary": codes.SCT.AxillaryLymphNode,  # 68171009
    "supraclavicular": codes.SCT.SupraclavicularLymphNode,  # 76838003
    "inguinal": codes.SCT.InguinalLymphNode,  # 8928004
}
LATERALITIES: dict[str, Code] = {
    "right": codes.SCT.Right,  # 24028007
    "left": codes.SCT.Left,  # 7771000
}

# --- IHE AIR: Contributing Equipment purpose of reference (as docs/dicom.md decides) ---
AIR_PURPOSE_OF_REFERENCE = Code("Newcode1", "99IHE", "1630")
