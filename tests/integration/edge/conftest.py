"""Fixtures of the edge security tests: the network edge's SCP factory and phantom files."""

from __future__ import annotations

from tests.integration.dicom_node.conftest import make_node, phantom_files

__all__ = ["make_node", "phantom_files"]
