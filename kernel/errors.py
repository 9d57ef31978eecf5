"""Exceptions that carry policy: what the caller should do about them."""

from __future__ import annotations


class NodeError(Exception):
    """Base class of the node's own errors."""


class InvalidInput(NodeError):
    """Permanent: the input cannot be used; do not retry. Keep the reason."""


class TransientError(NodeError):
    """Temporary: retry later (peer down, database busy, disk momentarily full)."""


class PeerRejected(NodeError):
    """A DICOM peer answered with a failure status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(f"{message} (status 0x{status:04X})")
        self.status = status


class EncodeError(NodeError):
    """Building or validating an output object failed: a bug, alert a human."""
