"""The IHE AI Results (AIR) Contributing Equipment item that names the algorithm.

highdicom 0.28 writes Contributing Equipment (PS3.3 C.12.1, Contributing Equipment Sequence)
only with DICOM purposes; the AIR profile asks for one more item whose purpose is the IHE code
and whose model and version are the algorithm's. It is appended to every output.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from inference.encode.codes import AIR_PURPOSE_OF_REFERENCE
from kernel.uids import derive_uid

MANUFACTURER = "lnm-node"


def algorithm_device_uid(model_key: str, model_version: str) -> str:
    """A Device UID that identifies one model version (the same on every output)."""
    return str(derive_uid("device", model_key, model_version))


def air_equipment_item(model_key: str, model_name: str, model_version: str) -> Dataset:
    """One Contributing Equipment Sequence item describing the algorithm (IHE AIR).

    Parameters
    ----------
    model_key, model_name, model_version
        The registered model; the name goes in ManufacturerModelName (cut to 64 characters),
        the version in SoftwareVersions, the key and version in the Device UID.
    """
    purpose = Dataset()
    purpose.CodeValue = AIR_PURPOSE_OF_REFERENCE.value
    purpose.CodingSchemeDesignator = AIR_PURPOSE_OF_REFERENCE.scheme_designator
    purpose.CodeMeaning = AIR_PURPOSE_OF_REFERENCE.meaning
    item = Dataset()
    item.PurposeOfReferenceCodeSequence = [purpose]
    item.Manufacturer = MANUFACTURER
    item.ManufacturerModelName = (model_name or model_key)[:64]
    item.SoftwareVersions = model_version[:64]
    item.DeviceUID = algorithm_device_uid(model_key, model_version)
    item.ContributionDescription = f"AI algorithm {model_key} {model_version}"[:1024]
    return item


def add_air_equipment(
    dataset: Dataset, model_key: str, model_name: str, model_version: str
) -> None:
    """Append the AIR item to ``dataset``'s ContributingEquipmentSequence (created if absent)."""
    item = air_equipment_item(model_key, model_name, model_version)
    if "ContributingEquipmentSequence" not in dataset:
        dataset.ContributingEquipmentSequence = []
    dataset.ContributingEquipmentSequence.append(item)
