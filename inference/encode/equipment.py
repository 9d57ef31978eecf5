"""The algorithm as equipment: one model name on every output, and the IHE AIR item.

Every output names the model the same way, ``key@version`` (:func:`model_name`): the SR's
observer device, the SEG's and the heatmap's General Equipment and the Contributing Equipment
item. highdicom 0.28 writes Contributing Equipment (PS3.3 C.12.1) only with DICOM purposes; the
IHE AI Results (AIR) profile asks for one more item whose purpose is (Newcode1, 99IHE,
"Processing Algorithm") and whose model and version are the algorithm's. It is appended to
every output.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from inference.encode.codes import AIR_PURPOSE_OF_REFERENCE
from kernel.provenance import NODE_MANUFACTURER
from kernel.uids import derive_uid

MANUFACTURER = NODE_MANUFACTURER


def model_name(model_key: str, model_version: str) -> str:
    """The model's one name on every output: ``key@version`` (cut to 64 characters, LO)."""
    return f"{model_key}@{model_version}"[:64]


def algorithm_device_uid(model_key: str, model_version: str) -> str:
    """A Device UID that identifies one model version (the same on every output)."""
    return str(derive_uid("device", model_key, model_version))


def air_equipment_item(model_key: str, model_title: str, model_version: str) -> Dataset:
    """One Contributing Equipment Sequence item describing the algorithm (IHE AIR).

    Parameters
    ----------
    model_key, model_version
        The registered model: ManufacturerModelName is :func:`model_name`, SoftwareVersions
        the version, the Device UID derives from both.
    model_title
        The model's descriptive name (spec ``name``), in ContributionDescription.
    """
    purpose = Dataset()
    purpose.CodeValue = AIR_PURPOSE_OF_REFERENCE.value
    purpose.CodingSchemeDesignator = AIR_PURPOSE_OF_REFERENCE.scheme_designator
    purpose.CodeMeaning = AIR_PURPOSE_OF_REFERENCE.meaning
    item = Dataset()
    item.PurposeOfReferenceCodeSequence = [purpose]
    item.Manufacturer = MANUFACTURER
    item.ManufacturerModelName = model_name(model_key, model_version)
    item.SoftwareVersions = model_version[:64]
    item.DeviceUID = algorithm_device_uid(model_key, model_version)
    item.ContributionDescription = f"AI algorithm {model_name(model_key, model_version)}: {model_title}"[:1024]
    return item


def add_air_equipment(
    dataset: Dataset, model_key: str, model_title: str, model_version: str
) -> None:
    """Append the AIR item to ``dataset``'s ContributingEquipmentSequence (created if absent)."""
    item = air_equipment_item(model_key, model_title, model_version)
    if "ContributingEquipmentSequence" not in dataset:
        dataset.ContributingEquipmentSequence = []
    dataset.ContributingEquipmentSequence.append(item)
