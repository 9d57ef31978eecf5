"""Synthetic ultrasound DICOM studies with ground truth, for tests and demos. All labelled synthetic."""
