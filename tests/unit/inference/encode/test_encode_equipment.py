"""Tests for inference.encode.equipment: the IHE AIR Contributing Equipment item."""

from __future__ import annotations

from pydicom.dataset import Dataset

from inference.encode.equipment import add_air_equipment, air_equipment_item


def test_air_equipment_item_purpose_model_version_device():
    item = air_equipment_item("tiny-ynet", "Tiny Y-Net", "0.1.0")
    purpose = item.PurposeOfReferenceCodeSequence[0]
    assert (purpose.CodeValue, purpose.CodingSchemeDesignator) == ("Newcode1", "99IHE")
    assert purpose.CodeMeaning == "Processing Algorithm"
    assert item.Manufacturer == "lnm-node"
    assert item.ManufacturerModelName == "tiny-ynet@0.1.0"
    assert "Tiny Y-Net" in item.ContributionDescription
    assert item.SoftwareVersions == "0.1.0"
    assert item.DeviceUID


def test_air_equipment_item_same_model_same_device_uid():
    first = air_equipment_item("tiny-ynet", "Tiny Y-Net", "0.1.0").DeviceUID
    again = air_equipment_item("tiny-ynet", "Tiny Y-Net", "0.1.0").DeviceUID
    other = air_equipment_item("tiny-ynet", "Tiny Y-Net", "0.2.0").DeviceUID
    assert first == again != other


def test_add_air_equipment_existing_sequence_appended():
    ds = Dataset()
    existing = Dataset()
    existing.Manufacturer = "scanner"
    ds.ContributingEquipmentSequence = [existing]
    add_air_equipment(ds, "tiny-ynet", "Tiny Y-Net", "0.1.0")
    assert [i.Manufacturer for i in ds.ContributingEquipmentSequence] == ["scanner", "lnm-node"]
