"""PS3.15 E.1-1 Basic Application Level Confidentiality Profile on a pydicom dataset.

The table of attributes and actions is dicom-anonymizer's transcription of the standard
(``dicomfields_2026c``); its per-VR dummy and empty values are reused. Here the actions are
applied at every depth (sequences included), private elements are removed everywhere, and UIDs
are remapped deterministically (:class:`UidMap`) so a study stays a study across files and runs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field

from dicomanonymizer import simpledicomanonymizer as actions
from dicomanonymizer.dicomfields_selector import dicom_anonymization_database_selector
from highdicom.sr import CodedConcept
from pydicom import Dataset, Sequence
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.uid import UID_dictionary

TABLE_VERSION = "dicomfields_2026c"

#: table category -> the action applied here (the library's reading of each combination)
_CATEGORY_ACTION = {
    "D_TAGS": "D", "Z_TAGS": "Z", "X_TAGS": "X", "U_TAGS": "U", "Z_D_TAGS": "D",
    "X_Z_TAGS": "X/Z", "X_D_TAGS": "D", "X_Z_D_TAGS": "D", "X_Z_U_STAR_TAGS": "U*",
}
BASIC_PROFILE = CodedConcept("113100", "DCM", "Basic Application Confidentiality Profile")
CLEAN_PIXEL_DATA = CodedConcept("113101", "DCM", "Clean Pixel Data Option")
#: repeating groups of overlays (60xx) and curves (50xx): graphics that can carry burned-in text
_GRAPHICS_GROUPS = (range(0x6000, 0x6100, 2), range(0x5000, 0x5100, 2))
#: sequences that identify a person or an institution (action D): every value of their items
#: that has no action of its own (a code value, a code meaning) is replaced with a dummy too
_IDENTITY_SEQUENCES = frozenset({
    0x00080082,  # Institution Code Sequence
    0x00081072,  # Operator Identification Sequence
    0x00401101,  # Person Identification Code Sequence
    0x0040A073,  # Verifying Observer Sequence
})
#: dummy values of dates and times that must stay present (D); Z empties them
DUMMY_TIME = {"DA": "19000101", "DT": "19000101000000", "TM": "000000"}


@dataclass(frozen=True)
class ProfileTable:
    """Tag -> action, exact tags and masked (repeating group) ones."""

    exact: dict[int, str]
    masked: tuple[tuple[int, int, int, int, str], ...]

    @classmethod
    def load(cls, version: str = TABLE_VERSION) -> ProfileTable:
        exact: dict[int, str] = {}
        masked: list[tuple[int, int, int, int, str]] = []
        for category, tags in dicom_anonymization_database_selector(version).items():
            action = _CATEGORY_ACTION.get(category)
            if action is None:
                continue
            for tag in tags:
                if len(tag) == 2:
                    exact[(tag[0] << 16) | tag[1]] = action
                else:
                    masked.append((tag[0], tag[1], tag[2], tag[3], action))
        return cls(exact, tuple(masked))

    def action(self, tag: int) -> str | None:
        """The action of ``tag``, or None (keep)."""
        found = self.exact.get(tag)
        if found is not None:
            return found
        group, element = tag >> 16, tag & 0xFFFF
        for g, e, gmask, emask, action in self.masked:
            if group & gmask == g & gmask and element & emask == e & emask:
                return action
        return None


@dataclass
class UidMap:
    """Old UID -> new UID: ``2.25.`` + a keyed hash of the old one (same secret, same UID)."""

    secret: str
    mapping: dict[str, str] = field(default_factory=dict)

    def __call__(self, uid: str) -> str:
        uid = str(uid).strip()
        if not uid:
            return uid
        if uid not in self.mapping:
            digest = hmac.new(self.secret.encode(), uid.encode(), hashlib.sha256).digest()
            self.mapping[uid] = f"2.25.{int.from_bytes(digest[:16], 'big')}"  # PS3.5 B.2 form
        return self.mapping[uid]

    def pseudonym(self, value: str) -> str:
        """A stable stand-in for an identifier (such as Patient ID), 16 hex characters."""
        digest = hmac.new(self.secret.encode(), value.encode(), hashlib.sha256).hexdigest()
        return f"DEID{digest[:12].upper()}"


def registered(value: object) -> bool:
    """Whether every UID of ``value`` is one the standard defines (a SOP class, a transfer
    syntax, a coding scheme): those identify nobody and are kept; any other is remapped."""
    values = value if isinstance(value, MultiValue | list) else [value]
    return all(str(v).strip() in UID_dictionary for v in values)


def _remap(element: DataElement, uids: UidMap) -> None:
    if isinstance(element.value, MultiValue | list):
        element.value = [uids(v) for v in element.value]
    elif element.value:
        element.value = uids(element.value)


def _dummy_unlisted(item: Dataset, table: ProfileTable) -> None:
    """Replace with dummies the values of ``item`` the table gives no action (the walk applies
    theirs to the others): sequences, UIDs and empty values are left to it."""
    for element in item:
        if (element.VR not in ("SQ", "UI") and not element.tag.is_private and element.value
                and table.action(int(element.tag)) is None):
            actions.replace_element(element)


def apply_basic_profile(ds: Dataset, uids: UidMap, table: ProfileTable,
                        options: Iterable[CodedConcept] = ()) -> None:
    """De-identify ``ds`` in place (file meta included) and record the method used: the basic
    profile and the ``options`` (PS3.16 CID 7050 codes) the caller applied.

    Beyond the table: overlays and curves are removed, and a person name or an instance UID
    (one the standard does not define) the table does not list is replaced or remapped too.
    """
    patient_id = str(ds.get("PatientID", "") or "")

    def clean(dataset: Dataset, element: DataElement) -> None:
        if element.tag.is_private:
            return
        if any(element.tag.group in groups for groups in _GRAPHICS_GROUPS):
            del dataset[element.tag]
            return
        action = table.action(int(element.tag))
        if action is None:
            if element.VR == "PN" and element.value:
                actions.replace_element(element)
            elif element.VR == "UI" and element.value and not registered(element.value):
                _remap(element, uids)  # an instance UID the table does not list
            return
        if action == "X":
            del dataset[element.tag]
        elif element.VR == "SQ":
            if action == "Z":
                element.value = Sequence()
            elif action == "X/Z":  # type 3 sequences: an empty one would be invalid
                del dataset[element.tag]
            elif int(element.tag) in _IDENTITY_SEQUENCES:
                for item in element.value:
                    _dummy_unlisted(item, table)
            # D, U and U* sequences stay; their items are cleaned as the walk goes down
        elif element.VR == "UI":
            if action == "Z":
                element.value = ""
            else:
                _remap(element, uids)
        elif element.VR in DUMMY_TIME:
            element.value = DUMMY_TIME[element.VR] if action == "D" else ""
        elif action in ("Z", "X/Z"):
            actions.empty_element(element)
        elif action == "D":
            actions.replace_element(element)
        else:  # U* on a non-UI element
            actions.empty_element(element)

    ds.walk(clean)
    ds.remove_private_tags()
    if patient_id:
        ds.PatientID = uids.pseudonym(patient_id)
    elif "PatientID" in ds:  # no ID stays no ID: one dummy for all would make them one patient
        ds.PatientID = ""
    ds.PatientIdentityRemoved = "YES"
    methods = [BASIC_PROFILE, *options]
    ds.DeidentificationMethod = "; ".join(code.meaning for code in methods)[:64]
    ds.DeidentificationMethodCodeSequence = methods
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        for keyword in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle",
                        "ReceivingApplicationEntityTitle", "PrivateInformationCreatorUID",
                        "PrivateInformation"):
            if keyword in meta:
                del meta[keyword]
        if "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
