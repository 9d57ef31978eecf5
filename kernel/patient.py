"""Who an instance belongs to: the patient key the receive stage records on each instance row.

The one-patient rule (:data:`pipeline.scoping.ONE_PATIENT_RULE`) counts a study's distinct keys.
"""

from __future__ import annotations

import hashlib
import json

from pydicom.dataset import Dataset

PATIENT_KEY_LENGTH = 64
"""Characters of a key (a sha256 hex digest): the width of ``Instance.patient_key``."""


def patient_key(header: Dataset) -> str:
    """The key of the patient an instance (its header, no pixels needed) belongs to.

    Two instances belong to the same patient when their IssuerOfPatientID (0010,0021) and
    PatientID (0010,0020) are equal, each without surrounding spaces. An empty PatientID is a
    patient of its own: an anonymous instance beside a named one is not assumed the same.

    The key is the sha256 of the pair, not the pair: the database keeps no patient identifier
    in clear. It is a comparison key, not a pseudonym (an ID can be guessed and hashed).
    """
    pair = [
        str(header.get("IssuerOfPatientID", "") or "").strip(),
        str(header.get("PatientID", "") or "").strip(),
    ]
    return hashlib.sha256(json.dumps(pair).encode()).hexdigest()
