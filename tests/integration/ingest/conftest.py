"""Fixtures for ingest tests: the in-process SCP of the DICOM network edge tests, reused."""

from tests.integration.dicom_node.conftest import make_node, node, phantom_files

__all__ = ["make_node", "node", "phantom_files"]
