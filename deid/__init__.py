"""De-identification of ultrasound DICOM files for export out of the hospital (PS3.15 Annex E)."""
